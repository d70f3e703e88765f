"""A voucher or promo code is the shopper's data: the embedded engine's refusals name it, the facade
masks it in the error message."""

from __future__ import annotations

import pytest

from loyaltykit import Loyalty, VoucherError, VoucherRedemption
from loyaltykit_local.demo import demo_settings


@pytest.mark.parametrize("code", ["NO-SUCH-CODE-42", "WELCOME10"])
def test_a_refused_code_is_masked_in_the_error_message(tmp_path, code):
    with Loyalty(demo_settings(tmp_path)) as loyalty:
        ann = loyalty.identify(email="ann@example.com")
        assert ann is not None
        # unknown, or (WELCOME10) refused without the basket its minimum needs
        with pytest.raises(VoucherError) as info:
            loyalty.redeem_voucher(VoucherRedemption(code=code, order_ref="ORD-B", customer_id=ann.id))
    assert code not in str(info.value) and code not in info.value.message
    assert "***" in info.value.message
