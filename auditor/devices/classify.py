"""One verdict per device from its MAC (OUI) and what its packets said (protocol signatures).

OUIs lie: OEM relabels keep the maker's firmware behind another brand's OUI, Wi-Fi cameras carry
the radio module's OUI, randomised MACs carry none. So protocol evidence overrules the OUI:

- Each maker's protocol score combines its distinct matching signatures as independent clues,
  1 - prod(1 - weight). A maker whose decisive clues alone score at least PROTOCOL_DECIDES is the
  maker, whatever the OUI: a call to a vendor's cloud can come from a person's laptop as well as
  from the vendor's device, so such clues only raise the confidence of a maker named otherwise.
- When the MAC's OUI then names someone else (another vendor of the catalog, or a registry
  organisation such as a Wi-Fi module maker), or an OEM field (SADP DetailOEMCode, DHIP Vendor)
  names a label, the verdict says it is an OEM relabel and why.
- Otherwise the OUI attribution stands (pin 0.8, registry name 0.7), strengthened by agreeing
  protocol evidence.
- The class is the strongest class a signature implies, else the maker's default class: a camera
  of a maker outside the catalog is still a camera when ONVIF says NetworkVideoTransmitter.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from auditor.devices.evidence import DeviceFacts
from auditor.devices.oui import is_locally_administered
from auditor.devices.signatures import Match, Signature
from auditor.devices.types import AnalystPin, ListEntry, Observation, OuiMatch, VendorVerdict
from auditor.devices.vendors import Vendor, VendorCatalog

OUI_CONFIDENCE = {"oui-pin": 0.8, "org-pattern": 0.7}
"""A pinned OUI was checked by a person; a registry name can be a module inside another product."""
PROTOCOL_DECIDES = 0.5
"""Protocol score at which protocol evidence names the maker, overruling the OUI."""
MAX_CONFIDENCE = 0.99


@dataclass(slots=True)
class _Tally:
    """Protocol clues for one maker (or class)."""

    signatures: dict[str, float] = field(default_factory=dict)
    decisive: dict[str, float] = field(default_factory=dict)
    """The clues that may name the maker (Signature.decisive): only they decide; the others add confidence."""

    @property
    def deciding_score(self) -> float:
        return _combined(self.decisive.values())

    @property
    def score(self) -> float:
        return _combined(self.signatures.values())


def _combined(weights: Iterable[float]) -> float:
    """Return independent clues combined: 1 - prod(1 - weight)."""
    miss = 1.0
    for weight in weights:
        miss *= 1.0 - weight
    return 1.0 - miss


def _lists(maker: Vendor, catalog: VendorCatalog) -> tuple[ListEntry, ...]:
    """Return the maker's restriction-list memberships as verdicts carry them."""
    return tuple(
        ListEntry(m.list, catalog.lists[m.list].name, m.clause, m.since.isoformat(), m.note) for m in maker.lists
    )


def classify(mac: int, oui: OuiMatch | None, catalog: VendorCatalog | None,
             facts: DeviceFacts | None, pin: AnalystPin | None = None) -> VendorVerdict | None:
    """Return the device's verdict, or None when neither its MAC nor its packets say anything.

    An analyst's pin wins: what it says replaces what the evidence says (the evidence is still shown).
    """
    found = _classify(mac, oui, catalog, facts)
    if pin is None:
        return found
    return _pinned(pin, found, catalog)


def _pinned(pin: AnalystPin, found: VendorVerdict | None, catalog: VendorCatalog | None) -> VendorVerdict:
    maker = catalog.get(pin.maker) if catalog is not None and pin.maker is not None else None
    if maker is None and pin.maker is None and found is not None and found.vendor_id is not None:
        maker = catalog.get(found.vendor_id) if catalog is not None else None  # the pin names only a class
    detail = pin.reference + (f": {pin.note}" if pin.note else "")
    base = found or VendorVerdict(vendor_id=None, name=None, device_class="other", how="", detail="", confidence=0)
    return VendorVerdict(
        vendor_id=maker.id if maker is not None else pin.maker,
        name=maker.name if maker is not None else None,
        device_class=pin.device_class or (maker.default_class if maker is not None and pin.maker else None)
        or base.device_class,
        how="analyst-pin",
        detail=detail,
        confidence=1.0,
        lists=_lists(maker, catalog) if maker is not None and catalog is not None else (),
        parents=tuple(p.id for p in catalog.parents(maker)) if maker is not None and catalog is not None else (),
        brand=pin.brand or base.brand,
        model=pin.model or base.model,
        firmware=pin.firmware or base.firmware,
        relabel=base.relabel if found is not None and found.vendor_id == (maker.id if maker else None) else None,
        evidence=base.evidence,
    )


def _classify(mac: int, oui: OuiMatch | None, catalog: VendorCatalog | None,
              facts: DeviceFacts | None) -> VendorVerdict | None:
    oui_match = catalog.vendor_for(mac, oui) if catalog is not None else None
    matches = facts.matches() if facts is not None else []
    makers: dict[str, _Tally] = {}
    for _, m in matches:
        s = m.signature
        if s.implies.maker is not None:
            tally = makers.setdefault(s.implies.maker, _Tally())
            tally.signatures[s.id] = max(tally.signatures.get(s.id, 0.0), s.weight)
            if s.decisive:
                tally.decisive[s.id] = tally.signatures[s.id]

    # 1. the maker: protocols decide when a maker's decisive clues alone reach PROTOCOL_DECIDES (the
    #    others only raise the confidence after), else the OUI
    best = max(makers.items(), key=lambda kv: (kv[1].deciding_score, kv[1].score, kv[0]), default=None)
    maker: Vendor | None = None
    how, detail, confidence = "", "", 0.0
    if best is not None and best[1].deciding_score >= PROTOCOL_DECIDES and catalog is not None:
        maker = catalog.get(best[0])
        confidence = best[1].score
        how, detail = "protocol", ", ".join(sorted(best[1].signatures))
        if maker is not None and oui_match is not None and _related(oui_match.vendor, maker, catalog):
            confidence = 1.0 - (1.0 - confidence) * (1.0 - OUI_CONFIDENCE[oui_match.how])
    if maker is None and oui_match is not None and catalog is not None:
        maker = oui_match.vendor
        how, detail = oui_match.how, oui_match.detail
        confidence = OUI_CONFIDENCE[oui_match.how]
        agreeing = {sid: w for m_id, t in makers.items() if (v := catalog.get(m_id)) and _related(v, maker, catalog)
                    for sid, w in t.signatures.items()}
        if agreeing:
            confidence = 1.0 - (1.0 - confidence) * (1.0 - _combined(agreeing.values()))
            detail += "; " + ", ".join(sorted(agreeing))

    # 2. what it is, from the clues that do not contradict the maker: no model or class of a maker that lost
    def consistent(s: Signature) -> bool:
        other = s.implies.maker
        if other is None:
            return True
        v = catalog.get(other) if catalog is not None else None
        return maker is not None and v is not None and catalog is not None and _related(v, maker, catalog)

    classes: dict[str, _Tally] = {}
    brand: tuple[float, str] | None = None
    model: tuple[float, str] | None = None
    firmware: tuple[float, str] | None = None
    oem_labels: list[str] = []
    for obs, m in matches:
        s = m.signature
        if not consistent(s):
            continue
        w = s.weight
        if s.implies.device_class is not None:
            kind = classes.setdefault(s.implies.device_class, _Tally())
            kind.signatures[s.id] = max(kind.signatures.get(s.id, 0.0), w)
        label = obs.value if s.implies.oem else s.implies.brand
        if label is not None and (brand is None or w > brand[0]):
            brand = (w, label)
        if s.implies.oem:
            oem_labels.append(f"{obs.protocol} {obs.field} {obs.value!r}")
        if m.model and (model is None or w > model[0]):
            model = (w, m.model)
        if m.firmware and (firmware is None or w > firmware[0]):
            firmware = (w, m.firmware)
    relabel = None
    if maker is not None and catalog is not None:
        if how == "protocol":
            relabel = _relabel(maker, oui_match.vendor if oui_match else None, oui, mac, catalog, oem_labels)
        elif oem_labels:
            relabel = f"sold under another label: {'; '.join(oem_labels)}"
    # the strongest single clue names the class (a specific "NVR model" beats several generic "camera" ones)
    strongest = {name: max(t.signatures.values()) for name, t in classes.items()}
    device_class = max(strongest.items(), key=lambda kv: (kv[1], kv[0]))[0] if classes else None
    if maker is None and device_class is None:
        return None
    evidence = _evidence([(obs, m) for obs, m in matches if consistent(m.signature)])
    if maker is None:  # a class from the wire, no maker we know
        assert device_class is not None
        return VendorVerdict(
            vendor_id=None, name=None, device_class=device_class, how="protocol",
            detail=", ".join(sorted(classes[device_class].signatures)),
            confidence=round(min(classes[device_class].score, MAX_CONFIDENCE), 3),
            brand=brand[1] if brand else None, model=model[1] if model else None,
            firmware=firmware[1] if firmware else None, evidence=evidence,
        )
    assert catalog is not None
    return VendorVerdict(
        vendor_id=maker.id,
        name=maker.name,
        device_class=device_class or maker.default_class,
        how=how,
        detail=detail,
        confidence=round(min(confidence, MAX_CONFIDENCE), 3),
        lists=_lists(maker, catalog),
        parents=tuple(p.id for p in catalog.parents(maker)),
        brand=brand[1] if brand else None,
        model=model[1] if model else None,
        firmware=firmware[1] if firmware else None,
        relabel=relabel,
        evidence=evidence,
    )


def _related(a: Vendor, b: Vendor, catalog: VendorCatalog) -> bool:
    """True when a and b are the same maker or one owns the other (EZVIZ and Hikvision)."""
    return a.id == b.id or b in catalog.parents(a) or a in catalog.parents(b)


def _relabel(maker: Vendor, oui_vendor: Vendor | None, oui: OuiMatch | None, mac: int, catalog: VendorCatalog,
             oem_labels: list[str]) -> str | None:
    reasons = []
    if oui_vendor is not None and not _related(oui_vendor, maker, catalog):
        reasons.append(f"the MAC's OUI belongs to {oui_vendor.name}")
    elif oui_vendor is None and oui is not None and not is_locally_administered(mac):
        reasons.append(f"the MAC's OUI belongs to {oui.organization} (a network module or OEM)")
    reasons.extend(f"sold under another label: {label}" for label in oem_labels)
    if not reasons:
        return None
    return f"made by {maker.name}; " + "; ".join(reasons)


def _evidence(matches: list[tuple[Observation, Match]]) -> tuple[Observation, ...]:
    seen: dict[tuple[str, str, str], Observation] = {}
    for obs, _ in matches:
        seen.setdefault((obs.protocol, obs.field, obs.value), obs)
    return tuple(seen.values())
