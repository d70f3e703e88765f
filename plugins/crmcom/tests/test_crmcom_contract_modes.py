"""The whole contract suite against the CRM.COM harness in each release's spend mode: the atomic
``purchases/create_spend`` (R9-R16) and the spend inside ``purchases/create`` (R17+). The default
mode (``spend_requests/create``) runs through the suite's own discovery."""

from loyaltykit_contract.suite import *  # noqa: F403

LOYALTYKIT_HARNESS = [
    "loyaltykit_crmcom.testing:make_create_spend_harness",
    "loyaltykit_crmcom.testing:make_inside_create_harness",
]
