"""The persistent model: one aggregate per module."""

from service.models.api_key import SCOPES, ApiKey, ApiKeyRate
from service.models.customer import UNKNOWN_CHANNEL, Customer
from service.models.data_change import DataChange, DataVersion, StoredReport
from service.models.job import JOB_STATES, Job
from service.models.order import COUNTED_STATUS, ORDER_STATUSES, Order
from service.models.spend import AcquisitionSpend
from service.models.stale_history import StaleHistory
from service.models.webhook import (
    DELIVERY_KEY_LENGTH,
    DELIVERY_STATUSES,
    TOPIC_LENGTH,
    WEBHOOK_KINDS,
    WebhookDelivery,
    WebhookErasure,
    WebhookSecret,
    WebhookSource,
)

__all__ = [
    "COUNTED_STATUS",
    "DELIVERY_KEY_LENGTH",
    "DELIVERY_STATUSES",
    "JOB_STATES",
    "ORDER_STATUSES",
    "SCOPES",
    "TOPIC_LENGTH",
    "UNKNOWN_CHANNEL",
    "WEBHOOK_KINDS",
    "AcquisitionSpend",
    "ApiKey",
    "ApiKeyRate",
    "Customer",
    "DataChange",
    "DataVersion",
    "Job",
    "Order",
    "StaleHistory",
    "StoredReport",
    "WebhookDelivery",
    "WebhookErasure",
    "WebhookSecret",
    "WebhookSource",
]
