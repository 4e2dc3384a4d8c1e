"""One router per module; every module here with a ``router`` is mounted by ``create_app``."""
