"""Rebuild surnames.csv, forenames.csv and postcode_districts.csv (a maintainer's script; not imported at run time).

    pip download --no-deps faker==40.63.0 names==0.3.0 -d /tmp/namepkgs   # then unpack both next to each other
    python bold_spark/synthetic/data/build_name_tables.py /tmp/namepkgs/faker /tmp/namepkgs/names/names-0.3.0/names

Head of each distribution: the UK lists in Faker's en_GB person provider (surname weights in percent, forenames in
rank order, both taken by Faker from ONS publications). Long tail: the US 1990 Census name files shipped in the
`names` package, used only for their rank order, given a Zipf-shaped weight and capped below the smallest UK head
weight (a name outside the UK's top list is by definition rarer than every name in it), plus a short curated list
of names common in the UK but absent from both (Welsh, Scottish, Irish, South Asian, Polish, West African).
See README.md for the licences.
"""
from __future__ import annotations

import csv
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
N_SURNAME_TAIL = 15000
SURNAME_HEAD_MASS = None  # the UK head keeps its published percentages; the tail takes the rest
FORENAME_HEAD_MASS = 0.82

IRISH_O_STEMS = {
    "Brien", "Connor", "Neal", "Neill", "Neil", "Donnell", "Connell", "Hara", "Leary", "Sullivan", "Keefe", "Rourke",
    "Malley", "Reilly", "Hare", "Donoghue", "Callaghan", "Grady", "Bryan", "Shea", "Toole", "Kane", "Farrell", "Dowd",
    "Meara", "Halloran", "Conner", "Loughlin", "Bannon", "Dwyer", "Driscoll", "Mara", "Donovan", "Flaherty", "Gorman",
    "Keeffe", "Mahony", "Mahoney", "Brian", "Riordan", "Boyle", "Carroll", "Dea", "Hearn", "Higgins", "Kelly",
}

EXTRA_SURNAMES = """
Mahmood Rahman Islam Akhtar Iqbal Choudhury Uddin Miah Bibi Sharma Kumar Gill Sandhu Sidhu Dhillon Mistry Chauhan
Parmar Mehta Joshi Desai Nawaz Aziz Butt Malik Qureshi Raja Bashir Hassan Anwar Kowalski Nowak Wisniewski Wojcik
Kaminski Lewandowski Zielinski Szymanski Wozniak Dabrowski Kowalczyk Mazur Krawczyk Chen Wang Zhang Liu Wong Chan
Okafor Adeyemi Mensah Owusu Boateng Okoro Adebayo Ogunleye Asante Osei MacLeod Mackay Sinclair Gallacher Docherty
Devlin Quinlan Llewellyn Pritchard Prosser Bevan Rees Vaughan Gruffydd Meredith
""".split()

EXTRA_FORENAMES = {
    "M": """Muhammad Mohammad Ahmed Ali Hassan Hussain Imran Tariq Bilal Omar Yusuf Ibrahim Rajesh Sanjay Vijay Amit
            Rahul Arjun Gurpreet Jaswinder Sukhdev Kamal Dafydd Gethin Owain Iwan Emyr Huw Aled Cai Hamish Angus
            Fraser Alasdair Ruaridh Eoin Ciaran Declan Padraig Seamus Niall Oisin Cormac Tomasz Piotr Krzysztof Pawel
            Marcin Lukasz Jakub Kacper Andrzej Mateusz Florin Ionut Andrei Kwame Kofi Emeka Tunde Oluwaseun Jermaine
            Tyrone Delroy Winston Leroy Kaiden Tyler Jayden Alfie Harvey Archie Freddie Ellis Reuben Rory Finlay Rohan
            Lewis Kai Bartosz Wiktor Dariusz Grzegorz""".split(),
    "F": """Fatima Aisha Ayesha Zainab Maryam Amina Nadia Samina Shazia Nasreen Parveen Priya Anita Sunita Pooja Neha
            Manpreet Harpreet Rajinder Siobhan Niamh Aoife Roisin Ciara Orla Caoimhe Saoirse Bronwen Cerys Ffion Sian
            Rhiannon Seren Catrin Eleri Morag Kirsty Mhairi Eilidh Iona Isla Agnieszka Katarzyna Magdalena Joanna Ewa
            Justyna Aleksandra Monika Ioana Elena Chiamaka Ngozi Abimbola Folasade Precious Shanice Chantelle Jade
            Kayleigh Leanne Stacey Danielle Gemma Zoe Chloe Megan Poppy Millie Evie Imogen Paige Courtney Jodie Kerry
            Bethany Ellie Freya Amelia""".split(),
}

# Outward codes (postcode districts) of UK towns and cities, written out by hand as area prefix and district numbers.
DISTRICTS = """
E 1-18|EC 1A,1V,2A,3A,4A|N 1-22|NW 1-11|SE 1-28|SW 1A,1P,1V,2-20|W 2-14|WC 1H,1X,2H|B 1-48|M 1-9,11-35|L 1-40
LS 1-29|S 1-14,17,20,35|BS 1-16|NE 1-15|NG 1-11|LE 1-5|G 1-5,11-15,20-23,31-34,40-46,51-53|EH 1-17
CF 3,5,10,11,14,15,23,24|BT 1-17,47,48|BD 1-10|CV 1-6|HU 1-9|ST 1-6|PL 1-7|SO 14-19|PO 1-6|BN 1-3|NR 1-7|CB 1-5
OX 1-4|RG 1,2,4,5,6,30,31|DE 1,3,21-24|WV 1-14|SR 1-6|TS 1-8|PR 1,2|FY 1-5|BL 1-4|OL 1-4,8,9|WN 1-6|SA 1-7
AB 10-16,24,25|DD 1-5|EX 1-4|YO 1,10,23,24,26,30,31,32|LU 1-4|MK 1-10|NN 1-5|PE 1-4|IP 1-4|SN 1-5|GL 1-4|BA 1,2
HD 1-5|WF 1-4|DN 1-5|LN 1-6|WA 1-5|SK 1-8|CR 0,2,4,7|KT 1-6|EN 1-3|IG 1-6|RM 1-7|HA 1-3|UB 1-10|BR 1-6|TW 1-13
DA 1-8|ME 1-5|CT 1,2|CO 1-4|CM 1,2|SS 0-3|WD 17-19,24,25|AL 1-4|SL 1-3|GU 1,2|BH 1-11|TA 1,2|TR 1|WR 1-5|HR 1-4
SY 1-3|TF 1-4|WS 1-5|DY 1-3|CH 1-4|CA 1-3|LA 1|DL 1-3|DH 1|HG 1-3|HX 1-3|IV 1-3|KA 1-3|PA 1-3|ML 1-3|FK 1,2
KY 1,2|PH 1,2|NP 19,20|LL 11-13
"""


def per_million(weight: float) -> str:
    return f"{weight * 1e6:.3f}".rstrip("0").rstrip(".")


def title(name: str) -> str:
    name = name.strip().title()
    if name.startswith("Mc") and len(name) > 3:
        return "Mc" + name[2:].title()
    if name.startswith("O") and name[1:].title() in IRISH_O_STEMS:
        return "O'" + name[1:].title()
    return name


def read_census(path: Path, limit: int | None = None) -> list[str]:
    names = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if parts:
            names.append(title(parts[0]))
        if limit and len(names) >= limit:
            break
    return names


def tail_weights(names: list[str], mass: float, cap: float) -> list[float]:
    """Zipf (1/rank) weights scaled to ``mass``, each capped at ``cap``, the excess spread over the uncapped names."""
    raw = [1.0 / (r + 1) for r in range(len(names))]
    weights = [w * mass / sum(raw) for w in raw]
    for _ in range(50):
        over = sum(max(0.0, w - cap) for w in weights)
        if over < 1e-12:
            break
        free = sum(w for w in weights if w < cap)
        weights = [cap if w >= cap else w + over * w / free for w in weights]
    return weights


def build(faker_dir: Path, census_dir: Path) -> None:
    sys.path.insert(0, str(faker_dir))
    from faker.providers.person.en_GB import Provider  # noqa: E402

    # Surnames: Faker's UK weights are percentages of the population covered by the 500 names.
    head = {title(k) if k.isupper() else k: v / 100.0 for k, v in Provider.last_names.items()}
    seen = {k.lower() for k in head}
    extras = [n for n in EXTRA_SURNAMES if n.lower() not in seen]
    seen |= {n.lower() for n in extras}
    census = [n for n in read_census(census_dir / "dist.all.last", N_SURNAME_TAIL + 2000) if n.lower() not in seen]
    census = census[:N_SURNAME_TAIL]
    min_head = min(head.values())
    tail_mass = 1.0 - sum(head.values())
    extra_weight = 0.6 * min_head
    tail = tail_weights(census, tail_mass - extra_weight * len(extras), 0.9 * min_head)
    rows = sorted([*head.items(), *((n, extra_weight) for n in extras), *zip(census, tail)], key=lambda kv: -kv[1])
    with open(HERE / "surnames.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["surname", "weight"])
        for name, weight in rows:
            w.writerow([name, per_million(weight)])
    print("surnames", len(rows))

    # Forenames: Faker's UK lists are in rank order; give the head a Zipf shape and the census tail the remainder.
    out = []
    for sex, uk, census_file in (("M", Provider.first_names_male, "dist.male.first"),
                                 ("F", Provider.first_names_female, "dist.female.first")):
        raw = [(r + 9) ** -1.1 for r in range(len(uk))]
        head = {n: w * FORENAME_HEAD_MASS / sum(raw) for n, w in zip(uk, raw)}
        seen = {k.lower() for k in head}
        extras = [n for n in EXTRA_FORENAMES[sex] if n.lower() not in seen]
        seen |= {n.lower() for n in extras}
        census = [n for n in read_census(census_dir / census_file) if n.lower() not in seen]
        min_head = min(head.values())
        extra_weight = 0.5 * min_head
        tail = tail_weights(census, 1.0 - FORENAME_HEAD_MASS - extra_weight * len(extras), 0.9 * min_head)
        rows = sorted([*head.items(), *((n, extra_weight) for n in extras), *zip(census, tail)], key=lambda kv: -kv[1])
        out += [(n, sex, w) for n, w in rows]
        print("forenames", sex, len(rows))
    with open(HERE / "forenames.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["forename", "sex", "weight"])
        for name, sex, weight in out:
            w.writerow([name, sex, per_million(weight)])

    districts = []
    for spec in DISTRICTS.replace("\n", "|").split("|"):
        if not spec.strip():
            continue
        area, numbers = spec.split()
        for part in numbers.split(","):
            if "-" in part:
                lo, hi = part.split("-")
                districts += [(f"{area}{i}", area) for i in range(int(lo), int(hi) + 1)]
            else:
                districts.append((f"{area}{part}", area))
    with open(HERE / "postcode_districts.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["district", "area"])
        w.writerows(districts)
    print("districts", len(districts))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    build(Path(sys.argv[1]), Path(sys.argv[2]))
