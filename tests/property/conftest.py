"""Property tests run through the real services against Azurite and the ACS emulator: the integration
fixtures are shared, not copied."""

from tests.e2e.conftest import make_stack
from tests.integration.conftest import acs, clock, svc

__all__ = ["acs", "clock", "make_stack", "svc"]
