"""The one signal of the reviews app.

`review_decided` is sent after the transaction that recorded a reviewer's decision has
committed, with `review_id` (public id) and `decision_id`. It exists so that apps downstream
(evaluation) learn of decisions without reviews importing them; it never drives the workflow.
"""

from django.dispatch import Signal

review_decided = Signal()
