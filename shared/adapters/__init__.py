"""The only modules that import Azure SDKs: they translate SDK results into our dataclasses and SDK
errors into ours (`raise ... from exc`)."""
