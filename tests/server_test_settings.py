"""The reference server's settings for the test suite's servers: a fast password hasher.

Django's own advice for tests: PBKDF2 costs the server about 0.35 s of CPU per login and
per account created, and the suite logs in hundreds of times. Everything else is the
production settings; servers the tests do not start (the systemd container's, the
benchmarks', the demo's) keep PBKDF2.
"""

from django.conf.global_settings import PASSWORD_HASHERS as _PRODUCTION_HASHERS

from server.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher", *_PRODUCTION_HASHERS]
