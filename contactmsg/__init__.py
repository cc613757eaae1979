"""`contactmsg`: the operator and producer command line for Contact Messages."""
