"""Variable message signs: rendering rules, drivers, the push loop and its audit log."""

from signage._audit import content_from_json, content_json, read_sign_states
from signage._content import Ack, Arrow, LineContent, SignContent, SignDriver, SignError
from signage._datex import SignHealth, SignReport, vms_publication, vms_table_publication
from signage._modes import SIGN_CHARACTERS, SignMode, SignTextError, mode_content
from signage._render import ForecastPoint, Level, LineState, Observation, SignState, render
from signage._service import SignageService, timing_problem

__all__ = [
    "SIGN_CHARACTERS",
    "Ack",
    "Arrow",
    "ForecastPoint",
    "Level",
    "LineContent",
    "LineState",
    "Observation",
    "SignContent",
    "SignDriver",
    "SignError",
    "SignHealth",
    "SignMode",
    "SignReport",
    "SignState",
    "SignTextError",
    "SignageService",
    "content_from_json",
    "content_json",
    "mode_content",
    "read_sign_states",
    "render",
    "timing_problem",
    "vms_publication",
    "vms_table_publication",
]
