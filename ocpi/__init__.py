"""The OCPI 2.2.1 pull (``parkleit ocpi``): other operators' charging points' live status from
their ``locations`` endpoints, on a schedule, into the database and the retained MQTT states;
their points become UNKNOWN when the endpoint stays silent past its staleness limit."""

from ocpi._service import OcpiService, PeerPull, PullError

__all__ = ["OcpiService", "PeerPull", "PullError"]
