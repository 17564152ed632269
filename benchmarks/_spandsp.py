"""spandsp's DTMF receiver (Debian ``libspandsp2``) through ctypes: the anchor for the DTMF benchmark.

Only the public API of ``spandsp/dtmf.h`` is used, with spandsp's defaults (``dtmf_rx_init`` and
nothing else: no dial-tone filter, default twist, reverse twist and threshold):

* ``dtmf_rx_init(NULL, NULL, NULL)`` makes a receiver;
* ``dtmf_rx_set_realtime_callback(s, cb, NULL)``: ``cb(user_data, code, level, delay)`` is called with
  the ASCII digit when a tone starts and 0 when it ends; we note the sample count fed so far;
* ``dtmf_rx(s, int16*, n)`` processes samples; ``dtmf_rx_get`` returns buffered digits;
* ``dtmf_rx_free(s)``.

spandsp works at 8 kHz only.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from dataclasses import dataclass, field

import numpy as np

_CANDIDATES = ("/usr/lib/x86_64-linux-gnu/libspandsp.so.2", "libspandsp.so.2", "libspandsp.so")


def load() -> ctypes.CDLL:
    """Load libspandsp; raises OSError naming what was tried when it is not installed."""
    errors = []
    found = ctypes.util.find_library("spandsp")
    for name in ((found,) if found else ()) + _CANDIDATES:
        try:
            lib = ctypes.CDLL(name)
        except OSError as exc:
            errors.append(f"{name}: {exc}")
            continue
        lib.dtmf_rx_init.restype = ctypes.c_void_p
        lib.dtmf_rx_init.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
        lib.dtmf_rx.restype = ctypes.c_int
        lib.dtmf_rx.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int]
        lib.dtmf_rx_get.restype = ctypes.c_size_t
        lib.dtmf_rx_get.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
        lib.dtmf_rx_set_realtime_callback.restype = None
        lib.dtmf_rx_set_realtime_callback.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
        lib.dtmf_rx_free.restype = ctypes.c_int
        lib.dtmf_rx_free.argtypes = [ctypes.c_void_p]
        return lib
    raise OSError("libspandsp not found (apt-get install libspandsp2): " + "; ".join(errors))


_TONE_REPORT = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int)


@dataclass
class SpandspDigit:
    digit: str
    reported_at: int  #: samples fed when spandsp reported the start
    ended_at: int | None = None


@dataclass
class SpandspDtmf:
    """One spandsp DTMF receiver. ``feed`` int16 samples; ``digits`` collects what it reports.

    ``chunk`` is how many samples go to spandsp per call: the reported times are known to within
    one chunk (spandsp's callback carries no sample position of its own).
    """

    chunk: int = 40
    digits: list[SpandspDigit] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lib = load()
        self._state = self._lib.dtmf_rx_init(None, None, None)
        if not self._state:
            raise RuntimeError("dtmf_rx_init failed")
        self._fed = 0
        self._cb = _TONE_REPORT(self._report)  # keep a reference: spandsp holds the pointer
        self._lib.dtmf_rx_set_realtime_callback(self._state, ctypes.cast(self._cb, ctypes.c_void_p), None)

    def _report(self, _user: int, code: int, _level: int, _delay: int) -> None:
        if code:
            self.digits.append(SpandspDigit(chr(code), self._fed))
        elif self.digits and self.digits[-1].ended_at is None:
            self.digits[-1].ended_at = self._fed

    def feed(self, samples: np.ndarray) -> None:
        x = np.ascontiguousarray(samples, dtype=np.int16)
        ptr = x.ctypes.data
        n = len(x)
        step = self.chunk
        for i in range(0, n, step):
            k = min(step, n - i)
            self._fed += k
            self._lib.dtmf_rx(self._state, ptr + 2 * i, k)

    def feed_raw(self, samples: np.ndarray) -> None:
        """One call for the whole buffer (for timing spandsp's C code without ctypes overhead)."""
        x = np.ascontiguousarray(samples, dtype=np.int16)
        self._fed += len(x)
        self._lib.dtmf_rx(self._state, x.ctypes.data, len(x))

    def buffered(self) -> str:
        """Digits in spandsp's own output buffer (``dtmf_rx_get``)."""
        buf = ctypes.create_string_buffer(256)
        n = self._lib.dtmf_rx_get(self._state, buf, 255)
        return buf.raw[:n].decode("ascii")

    def close(self) -> None:
        if self._state:
            self._lib.dtmf_rx_free(self._state)
            self._state = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass
