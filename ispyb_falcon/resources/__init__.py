"""Every served table as a declaration, one module per domain."""

from __future__ import annotations

from . import experiments, people, processing, proposals, reference, shipping

MODULES = {
    "proposals": proposals.ROUTES,
    "people": people.ROUTES,
    "shipping": shipping.ROUTES,
    "experiments": experiments.ROUTES,
    "processing": processing.ROUTES,
    "reference": reference.ROUTES,
}
