"""The Django application of the reference job server."""

from django.apps import AppConfig


class ServerConfig(AppConfig):
    """Models, admin and views of the job server live in the ``server`` app."""

    name = "server"
    verbose_name = "mlworker job server"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from server.wakeup import connect_signals

        connect_signals()
