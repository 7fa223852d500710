"""Privacy Desk's core: the domain, the policy, the data map and the evidence.

No terminal or browser code lives here; jobs/ and dashboard/ are thin shells around it.
"""
