from tests.core.auth_support import clock  # noqa: F401  (the movable clock fixture)
