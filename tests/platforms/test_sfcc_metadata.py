"""The cartridge's site-import metadata defines everything its code uses: custom attributes of the
system objects, site preferences, the outbox's custom object type, the two services, the payment
method, the hooks and the job step types. A name used in code but missing from the metadata fails here
(on a real instance it would fail only at run time)."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

SFCC = Path(__file__).resolve().parents[2] / "platforms" / "sfcc"
CARTRIDGE = SFCC / "cartridges" / "int_loyaltykit"
SCRIPTS = CARTRIDGE / "cartridge" / "scripts"
META = SFCC / "metadata" / "site_template"
NS = {"m": "http://www.demandware.com/xml/impex/metadata/2006-10-31"}


def metadata(path: Path) -> ET.Element:
    # The repository's own site-import files, not untrusted input: the stdlib parser is fine here.
    return ET.parse(path).getroot()  # noqa: S314


def code() -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in (CARTRIDGE / "cartridge").rglob("*.js"))


def extension_attributes() -> dict[str, set[str]]:
    root = metadata(META / "meta" / "system-objecttype-extensions.xml")
    return {ext.get("type-id"): {a.get("attribute-id") for a in ext.iterfind(".//m:attribute-definition", NS)}
            for ext in root.iterfind("m:type-extension", NS)}


def test_every_custom_attribute_used_on_system_objects_is_defined():
    used = set(re.findall(r"\.custom\.(loyaltykit\w+)", code()))
    defined = set().union(*extension_attributes().values())
    assert used and used <= defined, f"not in system-objecttype-extensions.xml: {sorted(used - defined)}"


def test_basket_attributes_are_also_on_the_order_so_sfcc_copies_them_at_order_creation():
    types = extension_attributes()
    assert types["Basket"] <= types["Order"]


def test_every_site_preference_read_is_defined():
    config = (SCRIPTS / "loyaltykit" / "config.js").read_text(encoding="utf-8")
    used = set(re.findall(r"(?:pref|number)\('(loyaltykit\w+)'", config))
    assert used and used <= extension_attributes()["SitePreferences"]


def test_the_outbox_type_defines_what_the_outbox_writes():
    root = metadata(META / "meta" / "custom-objecttype-definitions.xml")
    custom = root.find("m:custom-type[@type-id='LoyaltykitOutbox']", NS)
    defined = {a.get("attribute-id") for a in custom.iterfind(".//m:attribute-definition", NS)}
    outbox = (SCRIPTS / "loyaltykit" / "outbox.js").read_text(encoding="utf-8")
    written = set(re.findall(r"custom\.(\w+)\s*=", outbox)) | {"nextAttemptAt", "deliveredAt", "lastError", "attempts", "status"}
    assert written <= defined, sorted(written - defined)
    statuses = {v.text for v in custom.iterfind(".//m:attribute-definition[@attribute-id='status']//m:value", NS)}
    assert statuses == set(re.findall(r"'(QUEUED|RETRY|DONE|DEAD|CANCELLED)'", outbox))


def test_services_and_payment_method_exist():
    config = (SCRIPTS / "loyaltykit" / "config.js").read_text(encoding="utf-8")
    services = metadata(META / "services.xml")
    ns = {"s": "http://www.demandware.com/xml/impex/services/2014-09-26"}
    ids = {s.get("service-id") for s in services.iterfind("s:service", ns)}
    assert set(re.findall(r"'(loyaltykit\.http\.[\w.]+)'", config)) == ids
    for service in services.iterfind("s:service", ns):
        profile = services.find(f"s:service-profile[@service-profile-id='{service.findtext('s:profile-id', namespaces=ns)}']", ns)
        assert int(profile.findtext("s:timeout-millis", namespaces=ns)) > 0
        assert profile.findtext("s:cb-enabled", namespaces=ns) == "true"
        assert services.find(f"s:service-credential[@service-credential-id='{service.findtext('s:credential-id', namespaces=ns)}']", ns) is not None
    method = re.search(r"PAYMENT_METHOD_ID = '(\w+)'", config).group(1)
    payments = (META / "sites" / "RefArch" / "payment-methods.xml").read_text(encoding="utf-8")
    assert f'method-id="{method}"' in payments
    hooks = json.loads((SCRIPTS / "hooks.json").read_text(encoding="utf-8"))["hooks"]
    assert f"app.payment.processor.{method.lower()}" in {h["name"] for h in hooks}


def test_hooks_and_job_steps_point_at_modules_that_export_their_functions():
    assert json.loads((CARTRIDGE / "package.json").read_text())["hooks"] == "./cartridge/scripts/hooks.json"
    for hook in json.loads((SCRIPTS / "hooks.json").read_text(encoding="utf-8"))["hooks"]:
        assert (SCRIPTS / (hook["script"] + ".js")).is_file(), hook
    steps = json.loads((CARTRIDGE / "steptypes.json").read_text(encoding="utf-8"))["step-types"]["script-module-step"]
    jobs = (META / "jobs.xml").read_text(encoding="utf-8")
    for step in steps:
        module = SFCC / "cartridges" / step["module"]
        assert module.is_file(), step["module"]
        assert f"exports.{step['function']} =" in module.read_text(encoding="utf-8")
        assert f'type="{step["@type-id"]}"' in jobs
