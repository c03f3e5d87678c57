"""Prefect automations that notify a webhook about one deployment's runs.

Three automations per deployment, each sending through one notification block (a
``CustomWebhookNotificationBlock`` posting ``{"subject": ..., "text": ...}``):

* ``run failed``: reactive, a ``prefect.flow-run.Failed`` or ``...Crashed`` event of a run
  of the deployment; the message carries the state message (masked by the flow).
* ``run stuck``: proactive, a run entered Running and no other state event followed
  within ``stuck_after``.
* ``better model``: reactive, the flow's ``train-flow.best-model.improved`` event.

The Prefect server evaluates them (its triggers and actions services, on by default:
``PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED``), so nothing here runs at notification
time. Names are ``<flow>/<deployment>: <what>`` and the block is named after the
deployment: serving again updates them in place instead of adding copies.

    sync_notifications(deployment_id, "train-flow/TrainClassifiers", url, ui_url, 3600)
    list_notifications("train-flow/TrainClassifiers"); remove_notifications(...)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING
from urllib.parse import urlsplit
from uuid import UUID

from prefect_sklearn_dask.ml.errors import UserError
from prefect_sklearn_dask.notify.improved import EVENT as IMPROVED_EVENT

if TYPE_CHECKING:
    from prefect.events.schemas.automations import AutomationCore

TAG = "prefect-sklearn-dask"
FAILED_EVENTS = frozenset({"prefect.flow-run.Failed", "prefect.flow-run.Crashed"})
DURATION = re.compile(r"^\s*(?P<number>[-+]?\d+(?:\.\d+)?)\s*(?P<unit>[smhd]?)\s*$")
UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def check_webhook_url(url: str) -> str:
    """``url`` when it is an http(s) URL with a host; otherwise a :class:`UserError`."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UserError(
            f"--notify needs an http:// or https:// URL with a host, got {url!r} "
            "(e.g. https://hooks.slack.com/services/... or http://127.0.0.1:9000/hook)"
        )
    return url.strip()


def parse_duration(text: str) -> timedelta:
    """``90``, ``90s``, ``15m``, ``2h`` or ``1d`` as a positive timedelta."""
    found = DURATION.match(str(text))
    if found is None:
        raise UserError(
            f"--notify-stuck-after: {text!r} is not a duration; use seconds or a number "
            "with s, m, h or d, e.g. 45m"
        )
    seconds = float(found["number"]) * UNIT_SECONDS[found["unit"]]
    if seconds <= 0:
        raise UserError(f"--notify-stuck-after must be a positive duration, got {text!r}")
    return timedelta(seconds=seconds)


def block_name(deployment: str) -> str:
    """A block document name (lowercase, digits, dashes) derived from the deployment."""
    return re.sub(r"[^a-z0-9]+", "-", f"{deployment}-notify".lower()).strip("-")


def _run_url(ui_url: str) -> str:
    return f"{ui_url.rstrip('/')}/runs/flow-run/{{{{ flow_run.id }}}}"


def messages(deployment: str, ui_url: str) -> dict[str, tuple[str, str]]:
    """Subject and body templates (Jinja, rendered by the server) for each automation."""
    url = _run_url(ui_url)
    run = "Flow run {{ flow_run.name }} of " + deployment
    return {
        "run failed": (
            "{{ flow_run.name }}: {{ flow_run.state.name }} (" + deployment + ")",
            f"{run} ended {{{{ flow_run.state.name }}}}.\n"
            "Why: {{ flow_run.state.message }}\n"
            f"Run: {url}",
        ),
        "run stuck": (
            "{{ flow_run.name }}: Running too long (" + deployment + ")",
            f"{run} entered Running at {{{{ flow_run.start_time }}}} and reported no other "
            "state within {{ automation.trigger.within }} (now: {{ flow_run.state.name }}); "
            "a stuck cluster?\n"
            f"Run: {url}",
        ),
        "better model": (
            "{{ flow_run.name }}: better model (" + deployment + ")",
            f"{run} ({{{{ flow_run.state.name }}}}) found a better model: "
            "{{ event.payload.model }} {{ event.payload.metric }}={{ event.payload.score }}, "
            "previous best {{ event.payload.previous.model }} "
            "{{ event.payload.previous.score }}, dataset {{ event.payload.dataset }}.\n"
            f"Run: {url}",
        ),
    }


def desired_automations(
    deployment_id: UUID,
    deployment: str,
    block_id: UUID,
    ui_url: str,
    stuck_after: timedelta,
) -> list[AutomationCore]:
    """The three automations for one deployment (pure: nothing is sent to the server)."""
    from prefect.events.actions import SendNotification
    from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture

    related = {"prefect.resource.id": f"prefect.deployment.{deployment_id}"}
    runs = {"prefect.resource.id": "prefect.flow-run.*"}
    triggers = {
        "run failed": EventTrigger(
            match=runs,
            match_related=related,
            expect=set(FAILED_EVENTS),
            posture=Posture.Reactive,
            threshold=1,
            within=timedelta(0),
        ),
        "run stuck": EventTrigger(
            match=runs,
            match_related=related,
            after={"prefect.flow-run.Running"},
            expect={"prefect.flow-run.*"},
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=stuck_after,
        ),
        "better model": EventTrigger(
            match_related=related,
            expect={IMPROVED_EVENT},
            posture=Posture.Reactive,
            threshold=1,
            within=timedelta(0),
        ),
    }
    texts = messages(deployment, ui_url)
    descriptions = {
        "run failed": f"A run of {deployment} ended Failed or Crashed",
        "run stuck": f"A run of {deployment} stayed Running longer than {stuck_after}",
        "better model": f"A run of {deployment} found a better model ({IMPROVED_EVENT})",
    }
    return [
        AutomationCore(
            name=f"{deployment}: {what}",
            description=f"{descriptions[what]}: POST to the webhook (flows/serve.py --notify)",
            tags=[TAG],
            trigger=trigger,
            actions=[
                SendNotification(
                    block_document_id=block_id, subject=texts[what][0], body=texts[what][1]
                )
            ],
        )
        for what, trigger in triggers.items()
    ]


def save_webhook_block(url: str, deployment: str) -> UUID:
    """Create or overwrite the deployment's webhook block; its id."""
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    block = CustomWebhookNotificationBlock(
        name=deployment,
        url=url,
        json_data={"subject": "{{subject}}", "text": "{{body}}"},
    )
    return block.save(block_name(deployment), overwrite=True)


@dataclass(frozen=True)
class Synced:
    """What :func:`sync_notifications` did: the automations' names, created or updated."""

    created: list[str]
    updated: list[str]


def _ours(client, deployment: str) -> list:
    prefix = f"{deployment}: "
    return [a for a in client.read_automations() if TAG in a.tags and a.name.startswith(prefix)]


def sync_notifications(
    deployment_id: UUID, deployment: str, url: str, ui_url: str, stuck_after: timedelta
) -> Synced:
    """Make the server hold exactly this deployment's automations, whatever was there."""
    from prefect.client.orchestration import get_client

    block_id = save_webhook_block(url, deployment)
    wanted = desired_automations(deployment_id, deployment, block_id, ui_url, stuck_after)
    created: list[str] = []
    updated: list[str] = []
    with get_client(sync_client=True) as client:
        existing: dict[str, list] = {}
        for automation in _ours(client, deployment):
            existing.setdefault(automation.name, []).append(automation)
        for automation in wanted:
            found = existing.pop(automation.name, [])
            if found:
                client.update_automation(found[0].id, automation)
                updated.append(automation.name)
                for duplicate in found[1:]:
                    client.delete_automation(duplicate.id)
            else:
                client.create_automation(automation)
                created.append(automation.name)
        for stale in existing.values():  # ours, but no longer wanted
            for automation in stale:
                client.delete_automation(automation.id)
    return Synced(created=created, updated=updated)


def list_notifications(deployment: str) -> list[str]:
    """One line per automation of this deployment: name, enabled, what it sends to."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return [
            f"{a.name}  ({'enabled' if a.enabled else 'disabled'}, id {a.id})"
            for a in sorted(_ours(client, deployment), key=lambda a: a.name)
        ]


def remove_notifications(deployment: str) -> int:
    """Delete this deployment's automations and its webhook block; how many automations."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        ours = _ours(client, deployment)
        for automation in ours:
            client.delete_automation(automation.id)
        try:
            document = client.read_block_document_by_name(
                block_name(deployment), block_type_slug="custom-webhook"
            )
        except ObjectNotFound:
            document = None
        if document is not None:
            client.delete_block_document(document.id)
    return len(ours)


def receiver_problem(url: str, timeout: float = 5.0) -> str | None:
    """Why ``url`` cannot be reached now (None when something answers at all).

    A GET, not a POST: the check must not send a message. Any HTTP status counts as
    reachable (webhooks often answer 4xx/405 to GET).
    """
    import httpx

    try:
        httpx.get(url, timeout=timeout)
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}"
    return None
