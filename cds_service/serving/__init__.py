"""How ``cds-service serve`` serves: granian in front, Flask in a thread pool behind a buffering ASGI layer."""
