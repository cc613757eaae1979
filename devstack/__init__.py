"""Local development stack: Azurite launcher, ACS emulator and a local Functions runner.

Never deployed. Imports `shared` where useful; `shared` never imports this package.
"""
