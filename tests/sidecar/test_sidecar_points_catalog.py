"""The points catalog over HTTP: the quote names the points-priced lines and their points, one spend
pays them, an order whose points lines are not paid is refused with a problem naming the field, a
refund gives the points back."""

from __future__ import annotations

from .conftest import PROGRAM

EUR = "EUR"
CATALOG = PROGRAM + """
[[catalog]]
sku = "MUG"
name = "Club mug"
points_price = 250
"""


def _basket(customer_id: str) -> dict:
    return {"id": "cart-9", "currency": EUR, "customer_id": customer_id,
            "lines": [{"id": "1", "sku": "BEANS", "quantity": "1", "unit_price": {"amount": "20.00", "currency": EUR}},
                      {"id": "2", "sku": "MUG", "quantity": "2", "unit_price": {"amount": "0.00", "currency": EUR}}]}


def test_points_lines_over_http(make_service):
    service = make_service(CATALOG)
    customer_id = service.engine.create_customer(identifiers={"email": "ann@example.com"}, points=1000)
    quote = service.post("/v1/evaluate", _basket(customer_id))
    assert quote.status_code == 200, quote.text
    body = quote.json()
    assert body["points_lines"] == [{"line_id": "2", "sku": "MUG", "quantity": "2", "points": "500"}]
    assert body["points_due"] == "500" and body["total"] == {"amount": "20.00", "currency": EUR}

    spend = {"customer_id": customer_id, "order_ref": "O-9", "kind": "points", "points": "500",
             "points_value": {"amount": "0.00", "currency": EUR}, "line_ids": ["2"], "points_lines": body["points_lines"]}
    uncovered = service.post("/v1/cashback/spend", {**spend, "line_ids": []}, key="s-9-bad")
    assert uncovered.status_code == 400 and uncovered.json()["field"] == "line_ids", uncovered.text
    paid = service.post("/v1/cashback/spend", spend, key="s-9")
    assert paid.status_code == 200, paid.text
    receipt = paid.json()["receipt"]
    assert receipt["line_ids"] == ["2"] and receipt["points"] == "500"

    order = {"ref": "O-9", "currency": EUR, "customer_id": customer_id, "lines": _basket(customer_id)["lines"],
             "points_lines": body["points_lines"], "placed_at": "2026-01-01T10:00:00Z"}
    refused = service.post("/v1/orders", order, key="p-9-bad")
    assert refused.status_code == 400 and refused.json()["field"] == "receipts", refused.text
    assert service.post("/v1/orders", {**order, "receipts": [receipt]}, key="p-9").status_code == 202
    assert service.outbox.flush(service.loyalty) is not None

    refund = service.post("/v1/reversals", {"order": {**order, "receipts": [receipt]}, "kind": "refund",
                                            "lines": [{"line_id": "2", "quantity": "1"}], "reference": "RMA-9"},
                          key="r-9")
    assert refund.status_code == 200, refund.text
    assert refund.json()["points_returned"] == "250" and refund.json()["refund"]["line_points"] == "250"
