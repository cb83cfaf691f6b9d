"""Outbound and prompt policy: where LLM calls may go, and which prompts are refused.

Both are read from the configuration once, when the app starts (a bad entry or regular
expression stops the start-up with a clear message), and kept in ``app.extensions``.

Outbound, always (OUTBOUND_BLOCKED_NETWORKS): link-local and cloud-metadata addresses
(169.254.0.0/16 with 169.254.169.254, fe80::/10, fd00:ec2::254, 100.100.100.200) are refused,
whether written as a number or reached through a name that resolves to one; private networks
and localhost stay allowed, since company endpoints live there. Numeric host forms that the
resolver accepts (``0x7f000001``, ``2130706433``, ``0177.0.0.1``, ``127.1``) are normalised to
dotted quads before any check, and saved URLs are stored in that form.

Outbound (OUTBOUND_ALLOWLIST): when set, a model's base URL must name an allowed host —
``api.openai.com`` (exactly), ``*.openai.com`` (any subdomain, not the bare domain) — or
resolve into an allowed network (``10.0.0.0/8``, ``192.168.1.20``). A numeric address is
checked directly; a name that no name rule allows is resolved and *every* address it
resolves to must be inside an allowed network, since the client may connect to any of them.

Prompts (PROMPT_BLOCKED_PATTERNS): a JSON list of ``{"pattern": regex, "reason": text}``
(or the path of a file holding one). A prompt or system prompt matching a pattern is refused
with its reason, however the task is made: services call ``check_prompt`` and, so that no
path (duplicates, bulk jobs, future APIs) can skip it, a session hook checks every new or
edited task before it is written.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import logging
import os
import re
import socket
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from flask import current_app, has_app_context
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import event, inspect
from sqlalchemy.orm import Session

from llmadmin.config import parse_list
from llmadmin.errors import LLMError, ValidationError
from llmadmin.models import Task

logger = logging.getLogger(__name__)

EXTENSION = "llmadmin.policy"
HOST_RE = re.compile(
    r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$"
)


class BlockedURL(ValidationError, LLMError):
    """A base URL is outside OUTBOUND_ALLOWLIST: a form error when saving, a task failure when calling."""

    def __init__(self, message: str) -> None:
        LLMError.__init__(self, message, kind="blocked_url", retryable=False)


class PromptRefused(ValidationError):
    """A prompt matches one of PROMPT_BLOCKED_PATTERNS."""


# --- outbound ------------------------------------------------------------------------------


# What the resolver (inet_aton) reads as an IPv4 address: 1 to 4 parts, decimal, octal or hex.
LEGACY_IPV4_RE = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+)){0,3}$")


@dataclass(frozen=True)
class OutboundPolicy:
    """Allowed host names, subdomain suffixes and networks (empty: allow every address that is
    not blocked), and the networks that are always blocked."""

    hosts: frozenset[str] = frozenset()
    suffixes: tuple[str, ...] = ()
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    blocked: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @property
    def enabled(self) -> bool:
        return bool(self.hosts or self.suffixes or self.networks)


def parse_blocked_networks(entries: list[str]) -> tuple:
    """Parse OUTBOUND_BLOCKED_NETWORKS (IPs and CIDRs), raising ValueError on anything else."""
    networks = []
    for raw in entries:
        try:
            networks.append(ipaddress.ip_network(raw.strip().strip("[]"), strict=False))
        except ValueError as exc:
            raise ValueError(
                f"OUTBOUND_BLOCKED_NETWORKS entry {raw!r} is not an IP address or CIDR network."
            ) from exc
    return tuple(networks)


def normalise_host(host: str) -> str:
    """Return ``host`` lower-cased, with a numeric IPv4 form written as a dotted quad.

    ``0x7f000001``, ``2130706433``, ``0177.0.0.1`` and ``127.1`` all reach 127.0.0.1 (the
    resolver reads them so); checking them as names would let them past every rule.
    """
    host = (host or "").strip().lower().rstrip(".")
    if LEGACY_IPV4_RE.match(host):
        try:
            return str(ipaddress.IPv4Address(socket.inet_aton(host)))
        except OSError:
            return host
    return host


def normalise_url(url: str) -> str:
    """Return ``url`` with a numeric host written the standard way (see ``normalise_host``)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    canonical = normalise_host(host)
    if canonical == host or not LEGACY_IPV4_RE.match(host):
        return url
    netloc = canonical if parts.port is None else f"{canonical}:{parts.port}"
    return parts._replace(netloc=netloc).geturl()


def parse_allowlist(entries: list[str]) -> OutboundPolicy:
    """Parse OUTBOUND_ALLOWLIST entries, raising ValueError on one that is none of the known forms."""
    hosts, suffixes, networks = set(), [], []
    for raw in entries:
        entry = raw.strip().lower().rstrip(".")
        if not entry:
            continue
        if entry.startswith("*."):
            if not HOST_RE.match(entry[2:]) or "." not in entry[2:]:
                raise ValueError(
                    f"OUTBOUND_ALLOWLIST entry {raw!r}: '*.' must be followed by a domain "
                    "such as example.com."
                )
            suffixes.append(entry[1:])  # ".openai.com"
            continue
        try:
            networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            continue
        except ValueError:
            pass
        if not HOST_RE.match(entry):
            raise ValueError(
                f"OUTBOUND_ALLOWLIST entry {raw!r} is not a host name, *.domain, IP address "
                "or CIDR network."
            )
        hosts.add(entry)
    return OutboundPolicy(frozenset(hosts), tuple(suffixes), tuple(networks))


def resolve_host(host: str) -> list[str]:
    """Return every address ``host`` resolves to (tests replace this function)."""
    infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    return sorted({info[4][0] for info in infos})


def _in_networks(address: str, networks) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:10.0.0.1 is 10.0.0.1
    return any(ip.version == net.version and ip in net for net in networks)


def _blocked_address(host: str) -> BlockedURL:
    return BlockedURL(
        _(
            "Calls to %(host)s are not allowed: link-local and cloud-metadata addresses are "
            "blocked (OUTBOUND_BLOCKED_NETWORKS). Use the endpoint's own address.",
            host=host,
        )
    )


def _check_resolved_name(host: str, policy: OutboundPolicy) -> None:
    """Without an allowlist: refuse a name that resolves into a blocked network."""
    if not policy.blocked:
        return
    try:
        addresses = resolve_host(host)
    except (OSError, UnicodeError):
        return  # nothing to connect to: the call itself will fail and say so
    if any(_in_networks(a, policy.blocked) for a in addresses):
        raise _blocked_address(host)


def check_outbound_url(url: str, policy: OutboundPolicy | None = None) -> None:
    """Raise BlockedURL when the host of ``url`` is blocked or outside OUTBOUND_ALLOWLIST (when set)."""
    policy = outbound_policy() if policy is None else policy
    try:
        host = normalise_host(urlsplit(url).hostname or "")
    except ValueError as exc:
        raise BlockedURL(_("The base URL is not a valid URL.")) from exc
    if not host:
        raise BlockedURL(_("The base URL has no host name, so it cannot be checked."))
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
        numeric = True
    except ValueError:
        numeric = False
    if numeric and _in_networks(host, policy.blocked):
        raise _blocked_address(host)
    if not policy.enabled:
        if not numeric:
            _check_resolved_name(host, policy)
        return
    if numeric:
        if _in_networks(host, policy.networks):
            return
        raise BlockedURL(
            _(
                "Calls to %(host)s are not allowed: the address is outside OUTBOUND_ALLOWLIST.",
                host=host,
            )
        )
    if host in policy.hosts or any(host.endswith(suffix) for suffix in policy.suffixes):
        return
    if policy.networks:
        try:
            addresses = resolve_host(host)
        except (OSError, UnicodeError) as exc:
            raise BlockedURL(
                _(
                    "Calls to %(host)s are not allowed: the name could not be resolved to check "
                    "it against the networks in OUTBOUND_ALLOWLIST.",
                    host=host,
                )
            ) from exc
        outside = [a for a in addresses if not _in_networks(a, policy.networks)]
        if addresses and not outside:
            return
        if addresses:
            raise BlockedURL(
                _(
                    "Calls to %(host)s are not allowed: it resolves to %(addresses)s, "
                    "outside OUTBOUND_ALLOWLIST.",
                    host=host,
                    addresses=", ".join(outside),
                )
            )
    raise BlockedURL(
        _(
            "Calls to %(host)s are not allowed: the host is not in OUTBOUND_ALLOWLIST.",
            host=host,
        )
    )


def outbound_policy() -> OutboundPolicy:
    """Return the current app's outbound policy (parsed at start-up)."""
    return _state().outbound


# --- prompts -------------------------------------------------------------------------------


@dataclass(frozen=True)
class BlockedPattern:
    regex: re.Pattern
    reason: str


def parse_prompt_patterns(value: str) -> list[BlockedPattern]:
    """Parse PROMPT_BLOCKED_PATTERNS (JSON, or a path to a JSON file), raising ValueError when invalid."""
    value = (value or "").strip()
    if not value:
        return []
    source = "PROMPT_BLOCKED_PATTERNS"
    if not value.startswith(("[", "{")):
        source = f"PROMPT_BLOCKED_PATTERNS file {value}"
        try:
            with open(os.path.expanduser(value), encoding="utf-8") as fh:
                value = fh.read()
        except OSError as exc:
            raise ValueError(f"{source} cannot be read: {exc.strerror or exc}.") from exc
    try:
        items = json.loads(value)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{source} is not valid JSON: {exc}.") from exc
    if not isinstance(items, list):
        raise ValueError(
            f'{source} must be a JSON list of {{"pattern": ..., "reason": ...}} objects.'
        )
    patterns = []
    for number, item in enumerate(items, 1):
        if not (
            isinstance(item, dict)
            and isinstance(item.get("pattern"), str)
            and item["pattern"]
            and isinstance(item.get("reason"), str)
            and item["reason"].strip()
        ):
            raise ValueError(
                f'{source}: entry #{number} must be an object with a non-empty "pattern" '
                'and "reason".'
            )
        try:
            regex = re.compile(item["pattern"])
        except re.error as exc:
            raise ValueError(
                f"{source}: entry #{number} pattern {item['pattern']!r} is not a valid "
                f"regular expression: {exc}."
            ) from exc
        patterns.append(BlockedPattern(regex, item["reason"].strip()))
    return patterns


def check_prompt(
    prompt: str | None, system_prompt: str | None = None, turns: list | None = None
) -> None:
    """Raise PromptRefused, naming the reason, when a text matches a blocked pattern.

    ``turns`` are a conversation's earlier messages (``{"role", "content"}``): sent too, so
    checked too.
    """
    patterns = _state().prompt_patterns if has_app_context() else []
    if not patterns:
        return
    texts = [(_l("The prompt"), prompt), (_l("The system prompt"), system_prompt)]
    texts += [(_l("An earlier message of the conversation"), t.get("content")) for t in turns or ()]
    for label, text in texts:
        if not text or not isinstance(text, str):
            continue
        for pattern in patterns:
            if pattern.regex.search(text):
                raise PromptRefused(
                    _(
                        "%(field)s was refused by the prompt policy: %(reason)s.",
                        field=label,
                        reason=pattern.reason.rstrip("."),
                    )
                )


@event.listens_for(Session, "before_flush")
def _check_tasks_before_write(session, flush_context, instances) -> None:
    """Refuse to write a new or edited task whose prompt breaks the policy, whatever made it."""
    if (
        not has_app_context()
        or not current_app.extensions.get(EXTENSION)
        or not _state().prompt_patterns
    ):
        return
    changed = [obj for obj in session.new if isinstance(obj, Task)]
    for obj in session.dirty:
        if isinstance(obj, Task):
            state = inspect(obj)
            if (
                state.attrs.prompt.history.has_changes()
                or state.attrs.system_prompt.history.has_changes()
                or state.attrs.messages.history.has_changes()
            ):
                changed.append(obj)
    for task in changed:
        try:
            check_prompt(task.prompt, task.system_prompt, task.messages)
        except PromptRefused as exc:
            # Leave the session usable (the caller shows the message and may go on): drop the
            # refused batch of new tasks and the pending prompt edits before raising.
            for obj in changed:
                if obj in session.new:
                    session.expunge(obj)
                else:
                    session.expire(obj)
            source = f" (copy of task #{task.source_task_id})" if task.source_task_id else ""
            raise PromptRefused(f"{str(exc).rstrip('.')}{source}.") from None


# --- app wiring ------------------------------------------------------------------------------


@dataclass
class PolicyState:
    outbound: OutboundPolicy = field(default_factory=OutboundPolicy)
    prompt_patterns: list[BlockedPattern] = field(default_factory=list)


def _state() -> PolicyState:
    return current_app.extensions.get(EXTENSION) or PolicyState()


def init_app(app) -> None:
    """Parse both policies now, so a bad setting stops the start-up with a clear message."""
    try:
        allowlist = app.config.get("OUTBOUND_ALLOWLIST") or []
        if isinstance(allowlist, str):
            allowlist = parse_list(allowlist)
        blocked = app.config.get("OUTBOUND_BLOCKED_NETWORKS") or []
        if isinstance(blocked, str):
            blocked = parse_list(blocked)
        outbound = parse_allowlist(allowlist)
        state = PolicyState(
            dataclasses.replace(outbound, blocked=parse_blocked_networks(blocked)),
            parse_prompt_patterns(app.config.get("PROMPT_BLOCKED_PATTERNS") or ""),
        )
    except ValueError as exc:
        raise RuntimeError(str(exc)) from exc
    app.extensions[EXTENSION] = state
