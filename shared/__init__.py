"""Contact Messages application package: models, settings, services and SDK adapters.

Never imports `azure.functions`; `function_app.py` is the only module that does.
"""
