"""The composition root: the only part that knows every other one.

``parkleit.cli`` (the ``parkleit`` command, one module per command group), ``parkleit.demo``
(the whole system on the example cities), ``parkleit.embedded`` (private PostgreSQL and MQTT
servers when the machine has none) and ``parkleit.healthcheck`` (the containers' checks).
Layers: docs/architecture.md.
"""
