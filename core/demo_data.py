"""The demo world: a fleet operator in Hubei province, its county hospitals, vans and readers.

Coordinates are those of the county seats (approximate); names are illustrative.
Passwords are for the demo only and are listed in the README.
"""

DEMO_PASSWORD = "caravan-demo"

# (name, region code, latitude, longitude, address)
OPERATOR = ("Caravan Mobile Imaging (Hubei)", "CN-HB", 30.692, 111.286, "Depot 1, Yichang")

# (name, region code, latitude, longitude)
HOSPITALS = [
    ("Zhuxi County People's Hospital", "CN-HB-SY", 32.318, 109.715),
    ("Fang County People's Hospital", "CN-HB-SY", 32.057, 110.733),
    ("Baokang County People's Hospital", "CN-HB-XY", 31.878, 111.262),
    ("Nanzhang County People's Hospital", "CN-HB-XY", 31.776, 111.839),
    ("Yuan'an County People's Hospital", "CN-HB-YC", 31.061, 111.643),
    ("Xingshan County People's Hospital", "CN-HB-YC", 31.348, 110.746),
    ("Zigui County People's Hospital", "CN-HB-YC", 30.826, 110.978),
    ("Changyang Tujia County Hospital", "CN-HB-YC", 30.473, 111.207),
    ("Wufeng Tujia County Hospital", "CN-HB-YC", 30.199, 110.674),
    ("Badong County People's Hospital", "CN-HB-ES", 31.042, 110.340),
    ("Jianshi County People's Hospital", "CN-HB-ES", 30.602, 109.723),
    ("Hefeng County People's Hospital", "CN-HB-ES", 29.890, 110.034),
]

DEPOTS = {
    "Yichang depot": (30.692, 111.286),
    "Xiangyang depot": (32.009, 112.122),
}

# (name, modality, AE title, scanner model, capacity/day, depot)
UNITS = [
    ("CT Van 1", "CT", "CARAVAN_CT01", "64-slice CT (vehicle-mounted)", 40, "Yichang depot"),
    ("CT Van 2", "CT", "CARAVAN_CT02", "32-slice CT (vehicle-mounted)", 35, "Xiangyang depot"),
    ("MRI Van 1", "MR", "CARAVAN_MR01", "1.5 T MRI (vehicle-mounted)", 16, "Yichang depot"),
    ("DR Van 1", "DX", "CARAVAN_DX01", "Digital radiography, wireless detector", 80, "Xiangyang depot"),
]

# (full name, crew role, unit name, demo username or None)
CREW = [
    ("Wang Jun", "driver", "CT Van 1", None),
    ("Chen Li", "radiographer", "CT Van 1", "tech"),
    ("Zhao Peng", "driver", "CT Van 2", None),
    ("Sun Mei", "radiographer", "CT Van 2", None),
    ("Liu Yang", "driver", "MRI Van 1", None),
    ("Huang Qing", "technologist", "MRI Van 1", None),
    ("Zhou Bin", "driver", "DR Van 1", None),
    ("Wu Fang", "radiographer", "DR Van 1", None),
]

READING_GROUPS = [
    ("Wuhan Central Tele-Radiology Group", "CN-HB-WH", 30.593, 114.305),
    ("Hubei Neuro & Body Reading Group", "CN-HB-WH", 30.546, 114.342),
]

# (username, first, last, reading group index, subspecialties, licensed regions, on shift)
ALL_REGIONS = ["CN-HB", "CN-HB-ES", "CN-HB-SY", "CN-HB-XY", "CN-HB-YC"]
RADIOLOGISTS = [
    ("radiologist", "Li", "Na", 0, ["chest", "body"], ALL_REGIONS, True),
    ("dr.zhang", "Zhang", "Wei", 0, ["neuro"], ALL_REGIONS, True),
    ("dr.xu", "Xu", "Ming", 0, ["msk", "body"], ["CN-HB-YC", "CN-HB-ES"], False),
    ("dr.he", "He", "Jing", 1, ["neuro", "head_neck"], ALL_REGIONS, True),
    ("dr.gao", "Gao", "Yan", 1, ["body", "chest"], ["CN-HB-XY", "CN-HB-SY"], True),
    ("dr.ma", "Ma", "Lin", 1, ["msk"], ALL_REGIONS, False),
]

# Reading contracts, one per reading group, splitting the demo hospitals' regions between them;
# every radiologist of the group is a member: (name, group index, regions, modalities, lead
# username, SLA minutes for STAT / urgent / routine)
READING_POOLS = [
    (
        "Wuhan Central: Yichang & Enshi",
        0,
        ["CN-HB-YC", "CN-HB-ES"],
        ["CT", "MR", "DX"],
        "radiologist",
        (60, 240, 1440),
    ),
    (
        "Hubei Neuro & Body: Shiyan & Xiangyang",
        1,
        ["CN-HB-SY", "CN-HB-XY"],
        ["CT", "MR", "DX"],
        "dr.he",
        (60, 240, 1440),
    ),
]

# (username, role, organisation: "operator" | "hospital:<index>" | "group:<index>")
STAFF = [
    ("dispatcher", "dispatcher", "operator"),
    ("tech", "technologist", "operator"),
    ("hospital", "hospital_user", "hospital:6"),
    ("qc", "qc_officer", "operator"),
    ("admin", "admin", "operator"),
]

# Today's bookings at the demo hospital (user "hospital"), so the vans' worklists and the QC
# page have content: (unit, procedure, modality, body part, priority, patient ID, name, sex, birth)
ORDERS = [
    ("CT Van 1", "CT HEAD W/O CONTRAST", "CT", "HEAD", "URGENT", "ZG-100231", "WANG^FANG", "F", "1958-04-12"),
    ("CT Van 1", "CT CHEST LOW DOSE", "CT", "CHEST", "ROUTINE", "ZG-100232", "LI^QIANG", "M", "1966-09-30"),
    ("CT Van 1", "CT ABDOMEN", "CT", "ABDOMEN", "ROUTINE", "ZG-100233", "CHEN^JING", "F", "1972-01-05"),
    ("MRI Van 1", "MR BRAIN", "MR", "HEAD", "ROUTINE", "ZG-100234", "ZHAO^MIN", "M", "1949-11-21"),
    ("DR Van 1", "DX CHEST PA", "DX", "CHEST", "ROUTINE", "ZG-100235", "SUN^LI", "F", "1983-06-17"),
]
