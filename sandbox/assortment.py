"""The real-looking assortment the sandbox world is drawn from: categories, brands, product lines,
model-number templates and the words stores put in titles.

Kept apart from the generator so the data can grow without touching the arithmetic in
:mod:`sandbox.world_products`. Model templates use ``#`` for a digit, ``@`` for a letter (I and O
left out, as many manufacturers do) and ``{S}`` for the screen size; every other character is
literal. A template must hold at least :data:`MIN_MODEL_CAPACITY` codes so that every product of
a brand gets its own model number even at a million offers (the generator checks this).
"""

from __future__ import annotations

from dataclasses import dataclass

MODEL_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"
MIN_MODEL_CAPACITY = 10_000_000


@dataclass(frozen=True, slots=True)
class Brand:
    """A brand as it appears in one category: its product lines and how it numbers models."""

    name: str
    lines: tuple[str, ...]
    model_template: str
    gs1_prefix: str
    # Product descriptions this brand really makes in the category (empty: the category's own).
    descriptors: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Category:
    """One product category with everything needed to invent believable products in it."""

    slug: str
    name: str
    path: tuple[str, ...]
    google_category: str
    colour: str
    price_usd: tuple[int, int]
    brands: tuple[Brand, ...]
    descriptors: tuple[str, ...]
    # The noun short titles use ("Headphones"); empty when only the descriptor says what it is.
    short_noun: str
    colours: tuple[str, ...]
    features: tuple[str, ...]
    tags: tuple[str, ...]
    weight: int
    # (label, price multiplier): storage size, screen size, kit…; ("", 1.0) when it has none.
    specs: tuple[tuple[str, float], ...] = (("", 1.0),)
    gift: bool = False
    is_book: bool = False


def model_template_capacity(template: str) -> int:
    """How many distinct model numbers a template can spell."""
    capacity = 1
    for char in template.replace("{S}", ""):
        if char == "#":
            capacity *= 10
        elif char == "@":
            capacity *= len(MODEL_LETTERS)
    return capacity


CATEGORIES: tuple[Category, ...] = (
    Category(
        slug="smartphones",
        name="Smartphones",
        path=("Electronics", "Phones", "Smartphones"),
        google_category="Electronics > Communications > Telephony > Mobile Phones",
        colour="#2563eb",
        price_usd=(90, 1300),
        brands=(
            Brand(
                "Samsung",
                ("Galaxy A15", "Galaxy A35", "Galaxy S24", "Galaxy S24 Ultra"),
                "SM-@####@@",
                "880",
            ),
            Brand(
                "Apple",
                ("iPhone 15", "iPhone 15 Pro", "iPhone 16", "iPhone 16 Pro Max"),
                "MT@####@@",
                "019",
            ),
            Brand("Tecno", ("Camon 30", "Spark 20 Pro", "Pova 6 Pro"), "CL@####@@", "694"),
            Brand("Infinix", ("Hot 40i", "Note 40 Pro", "Smart 8"), "X6#####@@", "693"),
            Brand("Xiaomi", ("Redmi Note 13", "Redmi 13C", "Poco X6"), "2312@#####@", "695"),
            Brand("Nokia", ("G42", "C32", "G22"), "TA-#####@@", "644"),
        ),
        descriptors=(
            "5G Smartphone",
            "Dual SIM Smartphone",
            "Android Smartphone",
            "Unlocked Smartphone",
        ),
        short_noun="Smartphone",
        colours=(
            "Black",
            "Midnight Black",
            "Titanium Gray",
            "Ocean Blue",
            "Mint Green",
            "Silver",
            "White",
        ),
        features=(
            "A bright 6.6-inch display that stays readable in direct sunlight.",
            "All-day battery with fast charging.",
            "Multi-lens camera with night mode for sharp low-light photos.",
            "Dual SIM with 4G/5G support.",
            "Fingerprint and face unlock.",
        ),
        tags=("phone", "mobile", "smartphone"),
        weight=10,
        specs=(("64GB", 0.8), ("128GB", 1.0), ("256GB", 1.2), ("512GB", 1.5)),
    ),
    Category(
        slug="laptops",
        name="Laptops",
        path=("Electronics", "Computers", "Laptops"),
        google_category="Electronics > Computers > Laptops",
        colour="#475569",
        price_usd=(280, 2400),
        brands=(
            Brand("Dell", ("Inspiron 15", "XPS 13", "Latitude 5440"), "I####-####@@@", "884"),
            Brand("Lenovo", ("IdeaPad Slim 3", "ThinkPad E14", "Yoga 7"), "82@####@@", "196"),
            Brand("HP", ("Pavilion 15", "EliteBook 840", "Victus 16"), "15-@####@@", "197"),
            Brand(
                "Apple", ("MacBook Air 13", "MacBook Air 15", "MacBook Pro 14"), "MX@####@@", "019"
            ),
            Brand("Asus", ("VivoBook 15", "ZenBook 14", "TUF Gaming A15"), "X####@@-@@", "471"),
        ),
        descriptors=(
            "Laptop, Intel Core i5, 8GB RAM",
            "Laptop with 16GB RAM",
            "Thin and Light Laptop",
            "Business Laptop",
        ),
        short_noun="Laptop",
        colours=("Silver", "Space Gray", "Black", "Platinum"),
        features=(
            "Full HD anti-glare display.",
            "Fast SSD storage that boots in seconds.",
            "Backlit keyboard and a precise glass touchpad.",
            "Wi-Fi 6 and USB-C charging.",
            "Up to 10 hours of battery life.",
        ),
        tags=("laptop", "notebook", "computer"),
        weight=6,
        specs=(("256GB SSD", 0.9), ("512GB SSD", 1.0), ("1TB SSD", 1.25)),
    ),
    Category(
        slug="headphones",
        name="Headphones",
        path=("Electronics", "Audio", "Headphones"),
        google_category="Electronics > Audio > Audio Components > Headphones & Headsets > Headphones",
        colour="#7c3aed",
        price_usd=(15, 450),
        brands=(
            Brand("Sony", ("",), "WH-####@@#", "454"),
            Brand("Bose", ("QuietComfort", "QuietComfort Ultra"), "######-####", "017"),
            Brand("JBL", ("Tune", "Live", "Tour"), "JBL@####@@", "050"),
            Brand(
                "Apple",
                ("AirPods Pro 2", "AirPods 4"),
                "MQ@#####@",
                "019",
                (
                    "True Wireless Earbuds with Active Noise Cancellation",
                    "Wireless Earbuds with USB-C Case",
                ),
            ),
            Brand("Anker", ("Soundcore Life Q30", "Soundcore Space One"), "A30###@##@", "848"),
            Brand("Sennheiser", ("Momentum 4", "HD 450BT", "Accentum"), "M4@####@@", "404"),
        ),
        descriptors=(
            "Wireless Noise Cancelling Headphones",
            "Bluetooth Over-Ear Headphones",
            "True Wireless Earbuds",
            "On-Ear Wireless Headphones",
        ),
        short_noun="Headphones",
        colours=("Black", "Silver", "Midnight Blue", "White", "Beige"),
        features=(
            "Industry-leading noise cancelling for flights and commutes.",
            "Up to 30 hours of playback on one charge.",
            "Quick charge: 3 minutes for 3 hours of music.",
            "Clear hands-free calls with beamforming microphones.",
            "Multipoint connection to two devices at once.",
        ),
        tags=("headphones", "audio", "wireless"),
        weight=9,
        gift=True,
    ),
    Category(
        slug="televisions",
        name="Televisions",
        path=("Electronics", "TV & Video", "Televisions"),
        google_category="Electronics > Video > Televisions",
        colour="#0f766e",
        price_usd=(180, 520),
        brands=(
            Brand("Samsung", ("Crystal UHD", "QLED Q60D", "Neo QLED QN90D"), "UA{S}@####@@", "880"),
            Brand("LG", ("UHD UR80", "OLED evo C4", "NanoCell NANO81"), "OLED{S}@###@@@", "880"),
            Brand("Hisense", ("A6K", "U7K", "E7N QLED"), "{S}@####@@", "694"),
            Brand("Sony", ("Bravia X75K", "Bravia XR A80L", "Bravia 7"), "KD-{S}@#####@", "454"),
            Brand("TCL", ("P635", "C745 QLED", "P755"), "{S}P####@@@", "694"),
        ),
        descriptors=("4K UHD Smart TV", "Smart LED TV", "QLED 4K Google TV", "OLED 4K Smart TV"),
        short_noun="TV",
        colours=("Black", "Titan Black"),
        features=(
            "4K Ultra HD resolution with HDR10 and HLG.",
            "Built-in streaming apps: Netflix, YouTube and Prime Video.",
            "Dolby Audio with clear dialogue mode.",
            "Three HDMI ports, one with eARC.",
            "Slim bezels and a sturdy stand, wall-mount ready.",
        ),
        tags=("tv", "television", "4k"),
        weight=7,
        specs=(
            ("32-inch", 0.55),
            ("43-inch", 1.0),
            ("50-inch", 1.3),
            ("55-inch", 1.6),
            ("65-inch", 2.4),
            ("75-inch", 3.6),
            ("85-inch", 5.5),
        ),
    ),
    Category(
        slug="speakers",
        name="Speakers",
        path=("Electronics", "Audio", "Speakers"),
        google_category="Electronics > Audio > Audio Components > Speakers",
        colour="#db2777",
        price_usd=(25, 400),
        brands=(
            Brand("JBL", ("Flip 6", "Charge 5", "Go 3", "PartyBox 110"), "JBL@@####@", "050"),
            Brand(
                "Bose", ("SoundLink Flex", "SoundLink Max", "SoundLink Micro"), "SL######-@", "017"
            ),
            Brand("Sony", ("ULT Field 1", "SRS-XB100", "ULT Field 7"), "SRS-@####@@", "454"),
            Brand(
                "Anker",
                ("Soundcore 2", "Soundcore Motion 300", "Soundcore Boom 2"),
                "A31###@###",
                "848",
            ),
            Brand("Marshall", ("Emberton II", "Stanmore III", "Willen"), "MS-@####@@", "735"),
        ),
        descriptors=(
            "Portable Bluetooth Speaker",
            "Waterproof Wireless Speaker",
            "Smart Home Speaker",
            "Party Speaker",
        ),
        short_noun="Speaker",
        colours=("Black", "Blue", "Red", "Squad Camo", "White"),
        features=(
            "Big, room-filling sound from a compact body.",
            "IP67 waterproof and dustproof.",
            "Up to 20 hours of playtime.",
            "Pair two speakers for stereo sound.",
            "Built-in microphone for calls.",
        ),
        tags=("speaker", "bluetooth", "audio"),
        weight=6,
        gift=True,
    ),
    Category(
        slug="cameras",
        name="Cameras",
        path=("Electronics", "Cameras & Photo", "Cameras"),
        google_category="Cameras & Optics > Cameras > Digital Cameras",
        colour="#ea580c",
        price_usd=(150, 2500),
        brands=(
            Brand("Canon", ("EOS R50", "EOS R10", "EOS R8"), "EOS@####@@", "454"),
            Brand("Nikon", ("Z50", "Z fc", "Z30"), "VOA######@", "018"),
            Brand("Sony", ("Alpha 7 IV", "ZV-E10", "Alpha 6400"), "ILCE-#####@@", "454"),
            Brand("Fujifilm", ("X-T30 II", "X-S20", "X100VI"), "FX-@####@@", "454"),
            Brand(
                "GoPro",
                ("HERO12 Black", "HERO11 Mini", "HERO13 Black"),
                "CHDH@-#####@",
                "818",
                ("Action Camera", "Waterproof 5.3K Action Camera"),
            ),
        ),
        descriptors=(
            "Mirrorless Camera with 18-45mm Lens",
            "Digital Camera",
            "4K Vlogging Camera",
            "Mirrorless Camera",
        ),
        short_noun="Camera",
        colours=("Black", "Silver"),
        features=(
            "24-megapixel sensor with fast autofocus that tracks eyes.",
            "4K video without a crop.",
            "Flip-out touchscreen for vlogging and selfies.",
            "Wi-Fi and Bluetooth for instant sharing.",
            "In-body stabilization for sharp handheld shots.",
        ),
        tags=("camera", "photography"),
        weight=4,
        specs=(("Body Only", 1.0), ("Kit with Lens", 1.3)),
        gift=True,
    ),
    Category(
        slug="smartwatches",
        name="Smartwatches",
        path=("Electronics", "Wearables", "Smartwatches"),
        google_category="Electronics > Electronics Accessories > Wearable Technology > Smartwatches",
        colour="#0891b2",
        price_usd=(29, 800),
        brands=(
            Brand(
                "Garmin",
                ("Forerunner 265", "Venu 3", "Fenix 7", "Instinct 2"),
                "010-#####-##",
                "075",
            ),
            Brand("Apple", ("Watch Series 10", "Watch SE", "Watch Ultra 2"), "MW@####@@", "019"),
            Brand(
                "Samsung",
                ("Galaxy Watch7", "Galaxy Watch6 Classic", "Galaxy Fit3"),
                "SM-R###@@##",
                "880",
            ),
            Brand(
                "Casio",
                ("G-Shock GA-2100", "G-Shock Move", "Edifice"),
                "GA-####@-#@",
                "454",
                ("Analog-Digital Sports Watch", "Bluetooth Step Tracker Watch"),
            ),
            Brand("Xiaomi", ("Smart Band 9", "Redmi Watch 4", "Watch S3"), "M2###@#@#", "695"),
        ),
        descriptors=(
            "GPS Smartwatch",
            "Fitness Tracker Smartwatch",
            "Smartwatch with Heart Rate Monitor",
            "AMOLED Smartwatch",
        ),
        short_noun="Smartwatch",
        colours=("Black", "Silver", "Midnight", "Starlight", "Graphite", "Pink"),
        features=(
            "Built-in GPS for runs, rides and swims.",
            "24/7 heart rate, sleep and stress tracking.",
            "Up to 14 days of battery life.",
            "Water resistant to 50 metres.",
            "Notifications and contactless payments on your wrist.",
        ),
        tags=("smartwatch", "fitness", "wearable"),
        weight=6,
        gift=True,
    ),
    Category(
        slug="running-shoes",
        name="Running Shoes",
        path=("Sports & Outdoors", "Footwear", "Running Shoes"),
        google_category="Apparel & Accessories > Shoes > Athletic Shoes > Running Shoes",
        colour="#16a34a",
        price_usd=(25, 180),
        brands=(
            Brand(
                "Nike",
                ("Air Zoom Pegasus 41", "Revolution 7", "Downshifter 13", "Invincible 3"),
                "DV####-###",
                "019",
            ),
            Brand(
                "Adidas",
                ("Ultraboost Light", "Duramo SL", "Runfalcon 3.0", "Adizero SL"),
                "H@####@#",
                "406",
            ),
            Brand(
                "Asics",
                ("Gel-Nimbus 26", "Gel-Contend 8", "Novablast 4", "Gel-Kayano 31"),
                "1011@#####@",
                "454",
            ),
            Brand(
                "Puma", ("Velocity Nitro 3", "Softride Pro", "Deviate Nitro 2"), "3#####-##", "406"
            ),
            Brand(
                "New Balance",
                ("Fresh Foam 1080v13", "FuelCell Rebel v4", "520v8"),
                "M####@@#",
                "019",
            ),
            Brand(
                "Brooks", ("Ghost 16", "Glycerin 21", "Adrenaline GTS 23"), "110###1@####", "019"
            ),
        ),
        descriptors=(
            "Men's Running Shoes",
            "Women's Running Shoes",
            "Road Running Shoes",
            "Lightweight Running Trainers",
        ),
        short_noun="Running Shoes",
        colours=("Black/White", "Core Black", "Cloud White", "Volt", "Navy", "Grey", "Pink Glow"),
        features=(
            "Responsive foam cushioning for daily miles.",
            "Breathable engineered mesh upper.",
            "Durable rubber outsole with grip on wet roads.",
            "Reflective details for early-morning runs.",
            "Padded collar and heel for a locked-in fit.",
        ),
        tags=("running", "shoes", "sneakers", "trainers"),
        weight=9,
    ),
    Category(
        slug="sports-apparel",
        name="Sports Apparel",
        path=("Sports & Outdoors", "Clothing", "Sports Apparel"),
        google_category="Apparel & Accessories > Clothing > Activewear",
        colour="#65a30d",
        price_usd=(12, 120),
        brands=(
            Brand("Nike", ("Dri-FIT Legend", "Club Fleece", "Academy"), "DX####-###", "019"),
            Brand("Adidas", ("Tiro 24", "Essentials 3-Stripes", "Own the Run"), "I@####@#", "406"),
            Brand("Puma", ("teamGOAL", "Essentials Logo", "Run Favourite"), "6#####-##", "406"),
            Brand("Under Armour", ("Tech 2.0", "Rival Fleece", "Launch"), "13#####-###", "019"),
        ),
        descriptors=("Training T-Shirt", "Track Jacket", "Running Shorts", "Hoodie", "Joggers"),
        short_noun="",
        colours=("Black", "Navy", "White", "Grey Heather", "Red"),
        features=(
            "Sweat-wicking fabric keeps you dry.",
            "Soft stretch for full range of motion.",
            "Flatlock seams to prevent chafing.",
            "Machine washable.",
        ),
        tags=("sportswear", "apparel", "training"),
        weight=7,
        specs=(("Size S", 1.0), ("Size M", 1.0), ("Size L", 1.0), ("Size XL", 1.05)),
    ),
    Category(
        slug="kitchen-appliances",
        name="Kitchen Appliances",
        path=("Home & Kitchen", "Appliances", "Kitchen Appliances"),
        google_category="Home & Garden > Kitchen & Dining > Kitchen Appliances",
        colour="#ca8a04",
        price_usd=(15, 350),
        brands=(
            Brand("Ramtons", ("",), "RM-######@", "616"),
            Brand("Bruhm", ("",), "B@-#####@", "616"),
            Brand(
                "Philips",
                ("Series 3000", "Daily Collection", "Viva Collection"),
                "HD####-@##",
                "871",
            ),
            Brand("Hisense", ("",), "H##@####@", "694"),
            Brand("LG", ("NeoChef", "Smart Inverter"), "MS####@@@", "880"),
        ),
        descriptors=(
            "Air Fryer 4.1L",
            "Electric Kettle 1.7L",
            "Countertop Blender 600W",
            "Microwave Oven 20L",
            "2-Slice Toaster",
            "Rice Cooker 1.8L",
        ),
        short_noun="",
        colours=("Black", "White", "Stainless Steel", "Silver"),
        features=(
            "Easy-clean non-stick parts, dishwasher safe.",
            "Auto shut-off and overheat protection.",
            "Compact footprint for small kitchens.",
            "Two-year manufacturer warranty.",
        ),
        tags=("kitchen", "appliance", "home"),
        weight=6,
    ),
    Category(
        slug="coffee-makers",
        name="Coffee Makers",
        path=("Home & Kitchen", "Appliances", "Coffee Makers"),
        google_category="Home & Garden > Kitchen & Dining > Kitchen Appliances > Coffee Makers & Espresso Machines",
        colour="#92400e",
        price_usd=(30, 900),
        brands=(
            Brand(
                "De'Longhi",
                ("Dedica", "Magnifica S", "Stilosa"),
                "EC#####@@",
                "804",
                ("Espresso Machine", "Bean-to-Cup Coffee Machine", "Manual Espresso Maker"),
            ),
            Brand(
                "Nespresso",
                ("Vertuo Pop", "Essenza Mini", "Vertuo Next"),
                "ENV#####@@",
                "761",
                ("Pod Coffee Machine", "Capsule Coffee Machine with Milk Frother"),
            ),
            Brand("Philips", ("Series 2200", "Series 3200", "Series 5400"), "EP#####-##", "871"),
            Brand(
                "Breville",
                ("Barista Express", "Bambino Plus", "Barista Touch"),
                "BES######@",
                "021",
            ),
            Brand("Ramtons", ("",), "RM-C#####@@", "616"),
        ),
        descriptors=(
            "Espresso Machine",
            "Drip Coffee Maker",
            "Bean-to-Cup Coffee Machine",
            "Filter Coffee Maker 1.25L",
        ),
        short_noun="Coffee Maker",
        colours=("Black", "Silver", "Cream", "Red"),
        features=(
            "15-bar pump pressure for rich crema.",
            "Steam wand for silky milk foam.",
            "Removable water tank and drip tray.",
            "Heats up in under a minute.",
        ),
        tags=("coffee", "espresso", "kitchen"),
        weight=5,
        gift=True,
    ),
    Category(
        slug="mugs-flasks",
        name="Insulated Mugs & Flasks",
        path=("Home & Kitchen", "Drinkware", "Insulated Mugs & Flasks"),
        google_category="Home & Garden > Kitchen & Dining > Food & Beverage Carriers > Thermoses",
        colour="#b91c1c",
        price_usd=(9, 55),
        brands=(
            Brand("Thermos", ("Stainless King", "Ultimate Series", "Icon"), "SK####@@#", "501"),
            Brand("Contigo", ("West Loop Autoseal", "Byron", "Luxe"), "CT#####@@", "070"),
            Brand(
                "Stanley",
                ("Quencher H2.0", "Classic Legendary", "Adventure"),
                "10-#####-###",
                "041",
            ),
            Brand(
                "Hydro Flask",
                ("Wide Mouth", "Coffee with Flex Sip", "All Around"),
                "W###@@##",
                "810",
            ),
            Brand("Yeti", ("Rambler",), "YR-#####@@", "888"),
        ),
        descriptors=(
            "Vacuum Insulated Travel Mug 16oz",
            "Insulated Water Bottle 32oz",
            "Vacuum Flask 1.2L",
            "Insulated Tumbler 40oz with Straw",
            "Thermos Flask 500ml",
        ),
        short_noun="Insulated Mug",
        colours=(
            "Matte Black",
            "Stainless Steel",
            "Hammertone Green",
            "Charcoal",
            "Rose Quartz",
            "Cream",
        ),
        features=(
            "Keeps drinks hot for 12 hours and cold for 24.",
            "Leak-proof lid, safe to toss in a bag.",
            "Double-wall vacuum insulation: no sweating.",
            "18/8 stainless steel, BPA-free.",
            "Fits most car cup holders.",
        ),
        tags=("mug", "flask", "thermos", "insulated", "bottle"),
        weight=7,
        gift=True,
    ),
    Category(
        slug="backpacks",
        name="Backpacks",
        path=("Bags & Luggage", "Backpacks"),
        google_category="Luggage & Bags > Backpacks",
        colour="#4d7c0f",
        price_usd=(20, 250),
        brands=(
            Brand("Samsonite", ("Guardit 2.0", "Pro-DLX 6", "Vectura Evo"), "1####-####", "541"),
            Brand("The North Face", ("Borealis", "Jester", "Recon"), "NF0A#####@@", "196"),
            Brand("Herschel", ("Little America", "Heritage", "Nova"), "10###-#####", "828"),
            Brand("Nike", ("Brasilia", "Heritage", "Utility Speed"), "DH####-###", "019"),
        ),
        descriptors=(
            'Laptop Backpack 15.6"',
            "Travel Backpack 30L",
            "School Backpack",
            "Hiking Daypack 24L",
        ),
        short_noun="Backpack",
        colours=("Black", "Navy", "Olive", "Grey", "Burgundy"),
        features=(
            "Padded laptop sleeve fits up to 15.6 inches.",
            "Water-repellent fabric.",
            "Breathable back panel and padded straps.",
            "Front organiser pocket and side bottle pockets.",
        ),
        tags=("backpack", "bag", "travel"),
        weight=5,
    ),
    Category(
        slug="books",
        name="Books",
        path=("Books",),
        google_category="Media > Books",
        colour="#9333ea",
        price_usd=(6, 45),
        brands=(
            Brand(
                "Penguin",
                ("Chimamanda Ngozi Adichie", "James Clear", "Yuval Noah Harari"),
                "",
                "978",
            ),
            Brand("HarperCollins", ("Michelle Obama", "Paulo Coelho", "Trevor Noah"), "", "978"),
            Brand(
                "East African Educational Publishers",
                ("Ngũgĩ wa Thiong'o", "Margaret Ogola", "Grace Ogot"),
                "",
                "978",
            ),
            Brand(
                "Cassava Republic Press",
                ("Ayọ̀bámi Adébáyọ̀", "Chinua Achebe", "Wole Soyinka"),
                "",
                "978",
            ),
            Brand("Macmillan", ("Haruki Murakami", "Sally Rooney", "Kazuo Ishiguro"), "", "978"),
        ),
        descriptors=(
            "The Silent River",
            "A Brief History of Tomorrow",
            "Small Habits, Big Changes",
            "The River Between",
            "Half of a Yellow Sun",
            "Things We Carry",
            "The Lagos Letters",
            "Nairobi Nights",
            "The Last Harvest",
            "Coming Home",
        ),
        short_noun="Book",
        colours=("Paperback", "Hardcover"),
        features=(
            "A bestseller loved by book clubs.",
            "Now with a new afterword by the author.",
            "Printed on FSC-certified paper.",
        ),
        tags=("book", "reading"),
        weight=5,
        gift=True,
        is_book=True,
    ),
    Category(
        slug="toys",
        name="Toys & Games",
        path=("Toys & Games",),
        google_category="Toys & Games > Toys",
        colour="#f59e0b",
        price_usd=(8, 150),
        brands=(
            Brand(
                "LEGO",
                ("City", "Technic", "Friends", "Star Wars"),
                "LEGO-#####-@@",
                "570",
                ("Building Set", "Building Kit"),
            ),
            Brand(
                "Hasbro",
                ("Monopoly Classic", "Clue", "Connect 4", "Jenga"),
                "@####@@#",
                "501",
                ("Board Game", "Family Board Game"),
            ),
            Brand(
                "Mattel",
                ("Hot Wheels", "Matchbox"),
                "H@@#####",
                "019",
                ("Toy Car Set", "Track Set with 5 Cars"),
            ),
            Brand(
                "Play-Doh",
                ("Kitchen Creations", "Starter Set"),
                "PD-#####@@",
                "501",
                ("Creative Play Kit", "Modelling Compound 10-Pack"),
            ),
        ),
        descriptors=("Building Set", "Board Game", "Toy Car Set", "Creative Play Kit"),
        short_noun="",
        colours=("Multicolour",),
        features=(
            "Recommended for ages 6 and up.",
            "Hours of screen-free fun for the whole family.",
            "Makes a great birthday gift.",
            "Includes a step-by-step instruction booklet.",
        ),
        tags=("toy", "kids", "game"),
        weight=5,
        gift=True,
    ),
    Category(
        slug="beauty",
        name="Beauty",
        path=("Beauty & Personal Care",),
        google_category="Health & Beauty > Personal Care > Cosmetics",
        colour="#e11d48",
        price_usd=(4, 90),
        brands=(
            Brand("Nivea", ("",), "NV#####@@", "400"),
            Brand("L'Oréal Paris", ("Revitalift", "Elvive", "True Match"), "A#####@@", "360"),
            Brand("Maybelline", ("Fit Me", "Lash Sensational", "SuperStay"), "MB-#####@@", "360"),
            Brand("Dove", ("Deeply Nourishing", "Men+Care"), "DV8#####@@", "871"),
            Brand("Garnier", ("Micellar", "Fructis", "Even & Matte"), "GN#####@@", "360"),
        ),
        descriptors=(
            "Moisturising Cream 200ml",
            "Micellar Cleansing Water 400ml",
            "Foundation 30ml",
            "Volumising Mascara",
            "Body Lotion 400ml",
            "Skincare Gift Set",
        ),
        short_noun="",
        colours=("",),
        features=(
            "Dermatologically tested.",
            "Suitable for sensitive skin.",
            "Not tested on animals.",
            "Light, non-greasy formula.",
        ),
        tags=("beauty", "skincare", "cosmetics"),
        weight=6,
        gift=True,
    ),
)

CATEGORIES_BY_SLUG: dict[str, Category] = {category.slug: category for category in CATEGORIES}

BOOK_TITLE_PATTERNS = (
    "The {adjective} {noun}",
    "{noun} of the {adjective} City",
    "A {adjective} {noun}",
    "The {noun} Keeper",
)
BOOK_ADJECTIVES = (
    "Silent",
    "Golden",
    "Hidden",
    "Last",
    "Broken",
    "Distant",
    "Burning",
    "Quiet",
    "Wild",
    "Forgotten",
    "Small",
    "Brave",
    "Restless",
    "Yellow",
    "Bright",
)
BOOK_NOUNS = (
    "River",
    "Harvest",
    "Sun",
    "Letters",
    "Garden",
    "Road",
    "Promise",
    "Kingdom",
    "Habits",
    "Market",
    "Rain",
    "Lagos",
    "Nairobi",
    "Horizon",
    "Teacher",
)

# Where a brand sits in its categories' price ranges: 0 budget, 1 premium (0.5 when unlisted).
# Product lines in CATEGORIES are listed from cheaper to pricier within each brand.
BRAND_PRICE_TIERS: dict[str, float] = {
    "Apple": 0.9,
    "Sony": 0.75,
    "Bose": 0.8,
    "Sennheiser": 0.75,
    "Samsung": 0.6,
    "LG": 0.6,
    "Tecno": 0.2,
    "Infinix": 0.15,
    "Xiaomi": 0.25,
    "Nokia": 0.2,
    "Ramtons": 0.2,
    "Bruhm": 0.15,
    "Hisense": 0.3,
    "TCL": 0.3,
    "Anker": 0.3,
    "JBL": 0.45,
    "Marshall": 0.7,
    "Garmin": 0.75,
    "Casio": 0.3,
    "De'Longhi": 0.6,
    "Nespresso": 0.5,
    "Breville": 0.8,
    "Stanley": 0.6,
    "Yeti": 0.8,
    "Thermos": 0.4,
    "Contigo": 0.3,
    "Hydro Flask": 0.6,
    "Samsonite": 0.7,
    "The North Face": 0.6,
    "Herschel": 0.5,
    "Nike": 0.6,
    "Adidas": 0.55,
    "Asics": 0.55,
    "Puma": 0.35,
    "New Balance": 0.55,
    "Brooks": 0.7,
    "Under Armour": 0.5,
    "Canon": 0.6,
    "Nikon": 0.6,
    "Fujifilm": 0.7,
    "GoPro": 0.5,
    "Dell": 0.55,
    "Lenovo": 0.45,
    "HP": 0.45,
    "Asus": 0.4,
    "Philips": 0.5,
    "LEGO": 0.7,
    "Hasbro": 0.4,
    "Mattel": 0.3,
    "Play-Doh": 0.2,
    "Nivea": 0.3,
    "L'Oréal Paris": 0.5,
    "Maybelline": 0.4,
    "Dove": 0.3,
    "Garnier": 0.3,
}

REVIEWER_NAMES = (
    "Amina Odhiambo",
    "John Mwangi",
    "Chiamaka Okafor",
    "Sophie Martin",
    "Lukas Becker",
    "Emily Johnson",
    "Tunde Bakare",
    "Wanjiru Kamau",
    "Lucas Moreau",
    "Grace Achieng",
)

REVIEW_COMMENTS = (
    (5, "Excellent quality, exactly as described!"),
    (5, "Would buy again, arrived quickly."),
    (4, "Very good value for the price."),
    (4, "Works well, packaging could be better."),
    (3, "It's okay, does the job."),
    (2, "Not what I expected."),
    (1, "Stopped working after a week."),
)
