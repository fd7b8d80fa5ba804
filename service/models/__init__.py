"""The persistent model: one aggregate per module."""

from service.models.api_key import SCOPES, ApiKey
from service.models.customer import UNKNOWN_CHANNEL, Customer
from service.models.data_change import DataChange, DataVersion
from service.models.order import COUNTED_STATUS, ORDER_STATUSES, Order
from service.models.spend import AcquisitionSpend

__all__ = [
    "COUNTED_STATUS",
    "ORDER_STATUSES",
    "SCOPES",
    "UNKNOWN_CHANNEL",
    "AcquisitionSpend",
    "ApiKey",
    "Customer",
    "DataChange",
    "DataVersion",
    "Order",
]
