"""loyaltykit-contract: the engine-neutral contract suite every loyaltykit engine adapter must pass.

Run it against every installed harness (entry-point group ``loyaltykit.harness``)::

    pytest --pyargs loyaltykit_contract

or against one harness that lives elsewhere::

    pytest --pyargs loyaltykit_contract --loyaltykit-harness=mypkg.testing:make_harness

Adopt it inside an adapter's own tests with one file (see ``docs/adapter-guide.md``)::

    from loyaltykit_contract.suite import *  # noqa: F403
    LOYALTYKIT_HARNESS = "mypkg.testing:make_harness"
"""

from .requirements import requires
from .target import ContractTarget

__version__ = "0.1.0"

__all__ = ["ContractTarget", "__version__", "requires"]
