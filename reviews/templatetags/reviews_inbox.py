"""The inbox's result table: the admin's own template and headers, rows from admin.rows."""

from django import template
from django.contrib.admin.templatetags.admin_list import result_headers, result_hidden_fields

from ..admin.rows import inbox_results

register = template.Library()


@register.inclusion_tag("admin/change_list_results.html")
def inbox_result_list(cl):
    """What the admin's `result_list` tag gives its template, with the inbox's rows."""
    headers = list(result_headers(cl))
    return {
        "cl": cl,
        "result_hidden_fields": list(result_hidden_fields(cl)),
        "result_headers": headers,
        "num_sorted_fields": sum(1 for h in headers if h["sortable"] and h["sorted"]),
        "results": inbox_results(cl),
    }
