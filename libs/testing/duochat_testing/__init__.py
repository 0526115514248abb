"""Test and benchmark support (real processes, STOMP clients, fault proxies); never shipped in
an image."""
