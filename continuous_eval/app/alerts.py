"""Alert wiring: the channels (Resend email, webhooks, Slack) and the planner and dispatcher.

The email and webhook SDKs are imported only when a channel is configured.
"""

from __future__ import annotations

import dataclasses

from continuous_eval.ports import AlertChannel
from continuous_eval.service.alerts import NoticeRender, Render
from continuous_eval.service.calibration import AgreementRender
from continuous_eval.settings import Settings


@dataclasses.dataclass
class AlertWiring:
    """The configured alert channels and their payload renderers."""

    renderers: dict[str, Render]
    channels: dict[str, AlertChannel]
    notice_renderers: dict[str, NoticeRender] = dataclasses.field(default_factory=dict)
    """The outage notices' renderers, per channel (``core.outage``)."""
    agreement_renderers: dict[str, AgreementRender] = dataclasses.field(default_factory=dict)
    """The judge agreement notices' renderers, per channel (``core.calibration``)."""

    async def aclose(self) -> None:
        """Close the channels' HTTP clients (a channel serving two names, once)."""
        for channel in {id(c): c for c in self.channels.values()}.values():
            await channel.aclose()


def alert_wiring(settings: Settings) -> AlertWiring:
    """Build the channels the settings turn on; none means alerts are recorded ``suppressed``.

    Email needs a Resend key, a sender and recipients together; ``Settings``
    refuses a partial email configuration.
    """
    from continuous_eval.core import calibration, outage
    from continuous_eval.core.alert_render import canonical_json, email_renderer, webhook_renderer

    renderers: dict[str, Render] = {}
    notices: dict[str, NoticeRender] = {}
    agreement: dict[str, AgreementRender] = {}
    channels: dict[str, AlertChannel] = {}
    dashboard = settings.alert_dashboard_url
    key = settings.resend_api_key
    if key is not None and settings.alert_email_from and settings.alert_email_to:
        from continuous_eval.adapters.resend_email import ResendEmailChannel

        renderers["email"] = email_renderer(
            sender=settings.alert_email_from,
            recipients=settings.alert_email_to,
            dashboard_url=settings.alert_dashboard_url,
        )
        sender, recipients = settings.alert_email_from, list(settings.alert_email_to)
        notices["email"] = lambda n: canonical_json(
            outage.render_email(n, sender=sender, recipients=recipients, dashboard_url=dashboard)
        )
        agreement["email"] = lambda n: canonical_json(
            calibration.render_email(
                n, sender=sender, recipients=recipients, dashboard_url=dashboard
            )
        )
        channels["email"] = ResendEmailChannel(
            key,
            settings.resend_api_url,
            timeout_s=settings.alert_timeout_s,
            attempts=settings.alert_call_attempts,
            max_retry_after_s=settings.alert_max_retry_after_s,
        )
    if settings.alert_webhook_url is not None:
        from continuous_eval.adapters.webhook import WebhookChannel

        renderers["webhook"] = webhook_renderer(
            slack=settings.alert_webhook_slack, dashboard_url=settings.alert_dashboard_url
        )
        slack = settings.alert_webhook_slack
        notices["webhook"] = lambda n: canonical_json(
            outage.render_webhook(n, slack=slack, dashboard_url=dashboard)
        )
        agreement["webhook"] = lambda n: canonical_json(
            calibration.render_webhook(n, slack=slack, dashboard_url=dashboard)
        )
        channels["webhook"] = WebhookChannel(
            settings.alert_webhook_url,
            slack=settings.alert_webhook_slack,
            timeout_s=settings.alert_timeout_s,
            attempts=settings.alert_call_attempts,
            max_retry_after_s=settings.alert_max_retry_after_s,
        )
    if settings.run_webhook_secret is not None:
        from continuous_eval.adapters.webhook import Signer, WebhookChannel

        # Run-completion notices: each row carries its URL; the payload is
        # rendered when the run ends (core.run_notice), so no renderer here.
        signed = WebhookChannel(
            None,
            signer=Signer(settings.run_webhook_secret),
            timeout_s=settings.alert_timeout_s,
            attempts=settings.alert_call_attempts,
            max_retry_after_s=settings.alert_max_retry_after_s,
            name="callback",
        )
        channels["callback"] = channels["run_webhook"] = signed
    return AlertWiring(renderers, channels, notices, agreement)
