"""SIP dialogs (RFC 3261 §12, §14), sans-IO.

A :class:`Dialog` holds what RFC 3261 §12 says a dialog is (Call-ID, local and remote tags, local
and remote URIs, CSeq counters, remote target, route set) and builds in-dialog requests
(``create_request``, ``create_ack``) with the right Request-URI and Route headers (loose and
strict routing, §12.2.1.1). It checks incoming in-dialog requests (CSeq order, §12.2.2) and
applies target refreshes (Contact of re-INVITE/UPDATE and their 2xx). It also tracks the
one-INVITE-at-a-time rule of §14 so a UA can answer a crossing re-INVITE with 491 or 500.

:class:`DialogTable` finds the dialog for a message; a request with a To tag that matches none is
what a UA answers with 481 (:func:`is_in_dialog`).

Vias are not added here: the transport knows its own sent-by. Callers add the top Via (with a
fresh branch from :func:`new_branch`) before handing a request to the transaction layer.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field

from roomtone.sip.message import (
    NameAddr,
    Request,
    Response,
    SipMessage,
    SipSyntaxError,
    SipURI,
    parse_name_addr,
    parse_uri,
)
from roomtone.sip.transaction import MAGIC_COOKIE

log = logging.getLogger(__name__)

TARGET_REFRESH = frozenset({"INVITE", "UPDATE", "SUBSCRIBE", "NOTIFY", "REFER"})


def new_tag() -> str:
    return secrets.token_hex(6)


def new_branch() -> str:
    return MAGIC_COOKIE + secrets.token_hex(8)


def new_call_id(host: str = "roomtone") -> str:
    return f"{secrets.token_hex(10)}@{host}"


def _without_tag(na: NameAddr) -> str:
    """A From/To value with its tag removed (the dialog's local/remote URI)."""
    return str(NameAddr(na.uri, na.display, {k: v for k, v in na.params.items() if k != "tag"}))


def is_in_dialog(req: SipMessage) -> bool:
    """True if the request claims to be inside a dialog (has a To tag, §12.2.2)."""
    try:
        return req.to.tag is not None
    except SipSyntaxError:
        return False


@dataclass
class Dialog:
    """One dialog, from our point of view (local = us)."""

    call_id: str
    local_tag: str
    remote_tag: str
    local_uri: str
    """Our From (as UAC) / To (as UAS) value without tag, e.g. ``<sip:alice@example.com>``."""
    remote_uri: str
    remote_target: str
    """Where in-dialog requests go: the peer's Contact URI."""
    route_set: list[str] = field(default_factory=list)
    local_seq: int = 0
    remote_seq: int | None = None
    is_uac: bool = True
    secure: bool = False
    confirmed: bool = True
    terminated: bool = False
    local_contact: str | None = None
    """Our Contact (name-addr text) for target-refresh requests."""
    invite_in_progress: bool = False
    """We sent a (re-)INVITE that has no final response yet (§14.1: not another)."""
    remote_invite_pending: bool = False
    """The peer's (re-)INVITE has no final response from us yet (§14.2)."""

    @property
    def id(self) -> tuple[str, str, str]:
        return (self.call_id, self.local_tag, self.remote_tag)

    # -- creation
    @classmethod
    def from_uac(cls, request: Request, response: Response, local_contact: str | None = None) -> Dialog:
        """The dialog a 1xx-with-tag or 2xx to our INVITE creates (§12.1.2)."""
        contact = response.contact
        remote_target = str(contact.uri) if contact is not None else request.uri
        routes = list(reversed(response.get_all("record-route")))
        tag = response.to.tag or ""
        return cls(
            call_id=request.call_id,
            local_tag=request.from_.tag or "",
            remote_tag=tag,
            local_uri=_without_tag(request.from_),
            remote_uri=_without_tag(response.to),
            remote_target=remote_target,
            route_set=routes,
            local_seq=request.cseq[0],
            remote_seq=None,
            is_uac=True,
            secure=request.request_uri.scheme == "sips",
            confirmed=200 <= response.status < 300,
            local_contact=local_contact,
        )

    @classmethod
    def from_uas(cls, request: Request, local_tag: str, local_contact: str | None = None) -> Dialog:
        """The dialog our 1xx/2xx to an INVITE creates (§12.1.1); ``local_tag`` goes in To."""
        contact = request.contact
        remote_target = str(contact.uri) if contact is not None else str(request.from_.uri)
        return cls(
            call_id=request.call_id,
            local_tag=local_tag,
            remote_tag=request.from_.tag or "",
            local_uri=_without_tag(request.to),
            remote_uri=_without_tag(request.from_),
            remote_target=remote_target,
            route_set=request.get_all("record-route"),
            local_seq=0,
            remote_seq=request.cseq[0],
            is_uac=False,
            secure=request.request_uri.scheme == "sips",
            confirmed=False,
            local_contact=local_contact,
        )

    # -- outgoing
    def next_hop(self) -> SipURI:
        """The URI to resolve for sending an in-dialog request (first route or remote target)."""
        if self.route_set:
            return parse_name_addr(self.route_set[0]).uri
        return parse_uri(self.remote_target)

    def _base_request(self, method: str, cseq: int) -> Request:
        routes = list(self.route_set)
        ruri = self.remote_target
        if routes:
            first = parse_name_addr(routes[0])
            if "lr" not in first.uri.params:
                # strict routing (§12.2.1.1): first route becomes the Request-URI
                u = first.uri.copy()
                u.headers = {}
                ruri = str(u)
                routes = routes[1:] + [f"<{self.remote_target}>"]
        req = Request(method, ruri)
        req.add("Max-Forwards", "70")
        for r in routes:
            req.add("Route", r)
        req.add("From", f"{self.local_uri};tag={self.local_tag}")
        req.add("To", f"{self.remote_uri};tag={self.remote_tag}")
        req.add("Call-ID", self.call_id)
        req.add("CSeq", f"{cseq} {method}")
        return req

    def create_request(
        self,
        method: str,
        body: bytes = b"",
        content_type: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
    ) -> Request:
        """A new in-dialog request (not ACK/CANCEL): next CSeq, routes, Contact if refreshing."""
        if method in ("ACK", "CANCEL"):
            raise ValueError(f"{method} is not created with a new CSeq; use create_ack / cancel")
        self.local_seq += 1
        req = self._base_request(method, self.local_seq)
        if method in TARGET_REFRESH and self.local_contact:
            req.add("Contact", self.local_contact)
        for n, v in headers:
            req.add(n, v)
        if body:
            req.add("Content-Type", content_type or "application/sdp")
        req.body = body
        return req

    def create_ack(self, invite_cseq: int, body: bytes = b"", content_type: str | None = None) -> Request:
        """The ACK for a 2xx to our INVITE/re-INVITE: same CSeq number, method ACK (§13.2.2.4)."""
        req = self._base_request("ACK", invite_cseq)
        if body:
            req.add("Content-Type", content_type or "application/sdp")
        req.body = body
        return req

    # -- incoming
    def check_request(self, req: Request) -> int | None:
        """Validate an incoming in-dialog request; return an error status or None if accepted.

        Out-of-order CSeq gets 500 (§12.2.2); a re-INVITE while one of ours is pending gets 491
        and while the peer's previous one is unanswered gets 500 (§14.2). On acceptance the
        remote CSeq advances and a target refresh updates the remote target.
        """
        num, method = req.cseq
        if method == "ACK" or method == "CANCEL":
            return None
        if self.remote_seq is not None and num <= self.remote_seq:
            log.info("dialog %s: CSeq %d not above %d", self.call_id, num, self.remote_seq)
            return 500
        if method == "INVITE":
            if self.invite_in_progress:
                return 491
            if self.remote_invite_pending:
                return 500
        self.remote_seq = num
        if method in TARGET_REFRESH:
            self._refresh_target(req)
        return None

    def on_response(self, resp: Response) -> None:
        """Apply a response to one of our in-dialog requests (target refresh on 2xx)."""
        num, method = resp.cseq
        if 200 <= resp.status < 300:
            if method in TARGET_REFRESH:
                self._refresh_target(resp)
            if method == "INVITE":
                self.confirmed = True

    def _refresh_target(self, msg: SipMessage) -> None:
        try:
            contact = msg.contact
        except SipSyntaxError:
            return
        if contact is not None and contact.uri.is_sip:
            self.remote_target = str(contact.uri)


class DialogTable:
    """Dialogs by id; finds the one an incoming request or response belongs to."""

    def __init__(self) -> None:
        self._dialogs: dict[tuple[str, str, str], Dialog] = {}

    def __len__(self) -> int:
        return len(self._dialogs)

    def add(self, dialog: Dialog) -> None:
        self._dialogs[dialog.id] = dialog

    def remove(self, dialog: Dialog) -> None:
        dialog.terminated = True
        self._dialogs.pop(dialog.id, None)

    def __iter__(self):
        return iter(list(self._dialogs.values()))

    def for_request(self, req: SipMessage) -> Dialog | None:
        """The dialog of an incoming request: local tag is in To, remote tag in From."""
        try:
            return self._dialogs.get((req.call_id, req.to.tag or "", req.from_.tag or ""))
        except SipSyntaxError:
            return None

    def for_response(self, resp: SipMessage) -> Dialog | None:
        """The dialog of a response to our request: local tag in From, remote tag in To."""
        try:
            return self._dialogs.get((resp.call_id, resp.from_.tag or "", resp.to.tag or ""))
        except SipSyntaxError:
            return None


__all__ = [
    "Dialog",
    "DialogTable",
    "NameAddr",
    "is_in_dialog",
    "new_branch",
    "new_call_id",
    "new_tag",
]
