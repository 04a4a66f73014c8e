from django.apps import AppConfig


class PoliciesConfig(AppConfig):
    name = "policies"
    verbose_name = "Policies"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from .models import ActionType
        from .selectors import forget_catalogue

        post_save.connect(forget_catalogue, sender=ActionType, dispatch_uid="forget_catalogue")
        post_delete.connect(forget_catalogue, sender=ActionType, dispatch_uid="forget_catalogue_d")
