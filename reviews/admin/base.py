"""What every reviews admin shares."""

from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404
from simple_history.admin import SimpleHistoryAdmin

from hitl.admin import ValidatedChangelistMixin, history_version_or_404


class NoRevertHistoryAdmin(ValidatedChangelistMixin, SimpleHistoryAdmin):
    """History is for reading: a revert would move state behind the state machine's back."""

    def history_view(self, request, object_id, extra_context=None):
        # simple-history looks the object up unscoped; history shows what the screen shows.
        self._visible_or_404(request, object_id)
        return super().history_view(request, object_id, extra_context)

    def history_form_view(self, request, object_id, version_id, extra_context=None):
        if request.method == "POST":
            raise PermissionDenied("Reverting from history is disabled; the audit is immutable.")
        history_version_or_404(version_id)
        self._visible_or_404(request, object_id)
        return super().history_form_view(request, object_id, version_id, extra_context)

    def _visible_or_404(self, request, object_id):
        if self.get_object(request, unquote(object_id)) is None:
            raise Http404("Not found.")
