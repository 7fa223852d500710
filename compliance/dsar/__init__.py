"""Access and erasure requests: intake and review, deadlines, processing, exports, delivery."""
