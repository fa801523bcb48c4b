"""Test support: tenant factories and a real ASGI server on a free port
(`testkit.tenants`), the fake upstream that plays the providers
(`testkit.fakeupstream`), and the hooks tests use to observe the running gateway
(`testkit.observe`). Not part of the product: the gateway never imports it."""
