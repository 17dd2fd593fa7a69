#!/usr/bin/env python3
"""Refresh a price table (data/prices/<region>.json) from the AWS Price List bulk offer files.

    scripts/prices-refresh.py --region eu-west-1                 # rewrite data/prices/eu-west-1.json
    scripts/prices-refresh.py --region us-east-1 --from eu-west-1  # a new region, same entries
    scripts/prices-refresh.py --region eu-west-1 --offers-dir DIR  # offer files already downloaded

Each entry of the table names the offer (AmazonEC2, AmazonRDS, ...), its usage type and, where the
usage type alone is ambiguous, the operation (RunInstances = Linux; CreateDBInstance:0014 = PostgreSQL)
or product family. The script reads
https://pricing.us-east-1.amazonaws.com/offers/v1.0/aws/<offer>/current/<region>/index.json
(or <offers-dir>/<offer>/index.json), finds the one product whose attributes match, takes its
OnDemand price per unit in USD (the first tier that is not free: data transfer's first GB is), and
writes the table with today's date. An entry that matches no product, or more than one with
different prices, stops the script (exit 1) naming it; nothing is written then.

The AmazonEC2 offer file of a region is several hundred MB: the script needs the memory to parse it.
The machine that wrote this repository's table had no route to pricing.us-east-1.amazonaws.com, so
its figures were typed from the published prices (the table's `method` says so); run this where the
network allows and commit the result.
"""
import argparse
import datetime
import json
import os
import re
import sys
import urllib.request

BASE = "https://pricing.us-east-1.amazonaws.com/offers/v1.0/aws"
# Regional usage types carry a prefix (EU-, USW2-, APN1-...; none in us-east-1): compare without it.
PREFIX = re.compile(r"^[A-Z]{2,4}[0-9]?-")


def bare(usagetype):
    return PREFIX.sub("", usagetype, count=1)


def offer_url(offer, region):
    return f"{BASE}/{offer}/current/{region}/index.json"


def load_offer(offer, region, offers_dir):
    if offers_dir:
        with open(os.path.join(offers_dir, offer, "index.json")) as f:
            return json.load(f)
    with urllib.request.urlopen(offer_url(offer, region), timeout=600) as r:
        return json.load(r)


def on_demand_usd(offer, sku):
    """The per-unit USD price of `sku`: the lowest tier that is not free."""
    tiers = []
    for term in offer.get("terms", {}).get("OnDemand", {}).get(sku, {}).values():
        for dim in term.get("priceDimensions", {}).values():
            usd = float(dim.get("pricePerUnit", {}).get("USD", "nan"))
            tiers.append((float(dim.get("beginRange", "0")), usd))
    tiers.sort()
    paid = [usd for _, usd in tiers if usd > 0]
    return paid[0] if paid else (tiers[0][1] if tiers else None)


def find(offer, entry):
    """(usagetype, usd) of the product matching `entry`, or an error message."""
    want = bare(entry["usagetype"])
    found = {}
    for sku, product in offer.get("products", {}).items():
        a = product.get("attributes", {})
        if bare(a.get("usagetype", "")) != want:
            continue
        if "operation" in entry and a.get("operation") != entry["operation"]:
            continue
        if "product_family" in entry and product.get("productFamily") != entry["product_family"]:
            continue
        if a.get("capacitystatus", "Used") != "Used" or a.get("tenancy", "Shared") != "Shared":
            continue
        if a.get("preInstalledSw", "NA") != "NA":
            continue
        usd = on_demand_usd(offer, sku)
        if usd is not None:
            found[usd] = (a["usagetype"], a.get("location"))
    if len(found) != 1:
        return None, f"{len(found)} different on-demand prices match {entry}"
    usd, (usagetype, location) = next(iter(found.items()))
    return (usagetype, usd, location), None


def dump(table):
    """The table as JSON, one price per line (readable diffs)."""
    head = {k: v for k, v in table.items() if k != "prices"}
    text = json.dumps(head, indent=2)[:-2] + ',\n  "prices": {\n'
    rows = [f"    {json.dumps(k)}: {json.dumps(v)}" for k, v in sorted(table["prices"].items())]
    return text + ",\n".join(rows) + "\n  }\n}\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--region", required=True)
    parser.add_argument("--from", dest="source", help="start from this region's table (its entries)")
    parser.add_argument("--offers-dir", help="read <dir>/<offer>/index.json instead of downloading")
    parser.add_argument("--out", help="write here instead of data/prices/<region>.json")
    parser.add_argument("--date", help="the date to stamp (default: today, UTC)")
    args = parser.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    source = os.path.join(root, "data", "prices", f"{args.source or args.region}.json")
    with open(source) as f:
        table = json.load(f)
    offers = {}
    errors = []
    for key, entry in sorted(table["prices"].items()):
        name = entry["offer"]
        if name not in offers:
            print(f"reading {name} for {args.region}", file=sys.stderr)
            offers[name] = load_offer(name, args.region, args.offers_dir)
        match, error = find(offers[name], entry)
        if error:
            errors.append(f"{key}: {error}")
            continue
        entry["usagetype"], entry["usd"], location = match
        table["location"] = location or table.get("location")
    if errors:
        sys.exit("nothing written:\n  " + "\n  ".join(errors))
    table["region"] = args.region
    table["offers"] = {name: offer_url(name, args.region) for name in sorted(table["offers"])}
    table["taken"] = args.date or datetime.datetime.now(datetime.timezone.utc).date().isoformat()
    table["method"] = "fetched from the AWS Price List bulk offer files by scripts/prices-refresh.py"
    out = args.out or os.path.join(root, "data", "prices", f"{args.region}.json")
    with open(out, "w") as f:
        f.write(dump(table))
    print(f"wrote {len(table['prices'])} prices to {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
