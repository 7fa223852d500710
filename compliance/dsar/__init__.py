"""Data subject requests (access, erasure, objection, restriction, rectification, portability):
intake and review, deadlines, processing, exports, delivery."""
