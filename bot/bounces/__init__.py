"""Delivery state after the hand-off: bounces, complaints and mailto unsubscribes (docs/bounces.md)."""
