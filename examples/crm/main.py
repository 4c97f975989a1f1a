"""A stand-in CRM: other services ask it for a customer by phone, over RPC.

`@expose()` makes `by_phone` callable by services (never from HTTP):
`await rpc.request('crm', 'by_phone', phone='79161234567')`.
"""

import re
from typing import Any

from band import expose, settings


def digits(phone: str) -> str:
    """'+7 (916) 123-45-67' -> '79161234567'."""
    return re.sub(r'\D', '', phone)


@expose()
async def by_phone(phone: str) -> dict[str, Any] | None:
    """The customer with this phone, or None."""
    wanted = digits(phone)
    for customer in settings.customers:
        if digits(customer.phone) == wanted:
            record: dict[str, Any] = customer.to_dict()
            return record
    return None
