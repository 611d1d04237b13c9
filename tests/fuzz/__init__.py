"""Coverage-guided fuzzing of everything that reads hostile bytes: the envelope verifier, the delivery opener and
the configuration loaders (policies, the trust registry, the topic spec, connector configs, the shared parser).

The rule each harness enforces is the hostile-input rule of the unit tests: whatever bytes arrive, the verifier
returns a verified event or raises a ``VerificationError``, the opener an ``OpenError``, a configuration loader
its typed error naming the file, within a second. Anything else is a *failure*, recorded by its kind (the
exception's type and the innermost frame of the exchange's code that raised it) with the shortest input that
showed it, under ``tests/fuzz/corpus/crashes/``.

Run it with ``python -m tests.fuzz run --inputs N`` (``make fuzz`` runs a million inputs). Each harness runs in a
process of its own under atheris (libFuzzer) when it is installed, else under a plain mutational loop; both start
from genuine records and files built or shipped by the project. ``python -m tests.fuzz repro FILE`` replays a
saved input and shows its traceback. Once fixed, a failure's input is copied to ``corpus/regressions/``, where
the smoke test (tests/unit/test_fuzz_smoke.py) replays it and the fuzzers start from it.
"""
