"""Every scenario of the suite, for adopting it inside an adapter's own tests in one file::

    # tests/test_contract.py
    from loyaltykit_contract.suite import *  # noqa: F403
    LOYALTYKIT_HARNESS = "loyaltykit_acme.testing:make_harness"

``LOYALTYKIT_HARNESS`` (a ``module:factory`` string, or a list of them) pins the module's
scenarios to that harness; without it they run against every harness found, like the suite.
"""

from .test_evaluate import *  # noqa: F403
from .test_export import *  # noqa: F403
from .test_identify import *  # noqa: F403
from .test_issuance import *  # noqa: F403
from .test_lifecycle import *  # noqa: F403
from .test_members import *  # noqa: F403
from .test_money import *  # noqa: F403
from .test_parity import *  # noqa: F403
from .test_products import *  # noqa: F403
from .test_redeem import *  # noqa: F403
from .test_resilience import *  # noqa: F403
from .test_reverse import *  # noqa: F403
from .test_spend import *  # noqa: F403
