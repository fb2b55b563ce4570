"""The words the catalogue generator draws from: departments, product types, attributes, options.

Product types are Amazon-like: a category path, a phrase that goals and search use ("women's
running shoes"), title nouns, a pool of attributes and the option sets a product offers. An
attribute has a kind that decides where a goal places it, as in the original's synthetic goals:
`adj` before the product phrase ("slim fit, machine wash women's jumpsuits"), `with` after "with"
("with short sleeve") and `for` after "for" ("for daily wear").

The lists are chosen so that the reward can tell products apart (tests/test_webshop.py checks it):
within one type's pool no attribute is contained in another, in the type's own words, or scores
above 85 against another; within one option set no two values match after colour normalisation.
"""

from __future__ import annotations

from dataclasses import dataclass

ADJ, WITH, FOR = "adj", "with", "for"

# attribute phrase -> kind
ATTRIBUTES: dict[str, str] = {}


def _kind(kind: str, *phrases: str) -> tuple[str, ...]:
    for phrase in phrases:
        if ATTRIBUTES.setdefault(phrase, kind) != kind:
            raise ValueError(f"attribute {phrase!r} has two kinds")
    return phrases


# --- attribute pools ---------------------------------------------------------------------------

BEAUTY = (
    _kind(ADJ, "cruelty free", "paraben free", "long lasting", "dermatologist tested", "fragrance free",
          "sulfate free", "easy apply", "travel size", "alcohol free", "vegan", "non toxic", "oil free",
          "highly pigmented", "quick dry", "clinically proven", "hypoallergenic")
    + _kind(WITH, "tea tree", "coconut oil", "shea butter", "argan oil", "aloe vera", "hyaluronic acid",
            "vitamin c", "natural ingredients", "green tea", "storage case", "ceramic plates", "matte finish")
    + _kind(FOR, "sensitive skin", "dry skin", "dead skin", "fine lines", "dry hair", "hair growth",
            "oily skin", "damaged hair", "dark circles", "curly hair")
)
ELECTRONICS = (
    _kind(ADJ, "fast charging", "noise cancelling", "water resistant", "high speed", "easy install",
          "plug and play", "hands free", "heavy duty", "high definition", "wireless charging", "shockproof",
          "ultra slim", "dual band", "rechargeable", "lightweight design")
    + _kind(WITH, "usb c", "stereo sound", "touch control", "carrying case", "aluminum alloy",
            "built in microphone", "led display", "motion detection", "night vision", "tempered glass",
            "braided nylon", "magnetic mount")
    + _kind(FOR, "iphone", "gaming", "home office", "outdoor use", "car travel", "laptops", "samsung galaxy",
            "home security", "workouts")
)
FASHION = (
    _kind(ADJ, "machine wash", "hand wash", "slim fit", "quick drying", "moisture wicking", "non slip",
          "lace up", "tummy control", "button closure", "relaxed fit", "breathable", "wrinkle free",
          "stretchy", "waterproof", "anti odor")
    + _kind(WITH, "polyester spandex", "cotton blend", "short sleeve", "long sleeve", "high waist",
            "rubber sole", "memory foam", "faux fur", "side pockets", "arch support", "steel toe",
            "drawstring closure", "padded shoulder straps", "laptop sleeve", "ankle support")
    + _kind(FOR, "daily wear", "gym workout", "yoga", "trail", "walking", "office wear", "beach", "school",
            "travel", "winter")
)
FOOD = (
    _kind(ADJ, "gluten free", "sugar free", "non gmo", "keto friendly", "low carb", "dairy free",
          "high protein", "usda organic", "kosher", "plant based", "shelf stable", "caffeine free",
          "low calorie", "grass fed", "individually wrapped", "fair trade")
    + _kind(WITH, "real fruit", "sea salt", "whole grains", "no artificial flavors", "almond butter",
            "probiotics", "cold pressed", "resealable bag")
    + _kind(FOR, "breakfast", "weight loss", "snacking", "gift", "lunch boxes", "athletes", "kids")
)
FURNITURE = (
    _kind(ADJ, "easy assemble", "height adjustable", "space saving", "sturdy", "mid century",
          "button tufted", "lumbar support", "swivel", "foldable", "rustic", "scratch resistant")
    + _kind(WITH, "solid wood", "metal frame", "storage space", "faux leather", "footrest", "velvet fabric",
            "cable management", "open shelves", "headboard", "wheels", "drawers", "tempered glass top")
    + _kind(FOR, "living room", "dining room", "bedroom", "home office", "kitchen island", "small spaces",
            "apartment", "gaming setup")
)
SPORTS = (
    _kind(ADJ, "bpa free", "leak proof", "non slip", "eco friendly", "easy carry", "double wall",
          "extra thick", "anti tear", "insulated", "adjustable", "portable", "high density", "rust proof")
    + _kind(WITH, "stainless steel", "carry strap", "straw lid", "rainfly", "alignment lines",
            "door anchor", "hex design", "rubber coating", "mesh windows", "storage bag")
    + _kind(FOR, "home gym", "hot yoga", "camping", "pilates", "backpacking", "strength training",
            "physical therapy", "hiking", "family", "festivals")
)

# --- option sets: key -> (option name as shown, values) ------------------------------------------

OPTION_SETS: dict[str, tuple[str, tuple[str, ...]]] = {
    "apparel_color": ("color", ("black", "white", "navy", "red", "green", "beige", "grey", "pink", "purple",
                                "brown", "khaki", "orange", "yellow", "teal", "burgundy", "olive")),
    "apparel_size": ("size", ("xs", "small", "medium", "large", "xl", "xxl", "3xl")),
    "shoe_size": ("size", ("5", "6", "7", "8", "9", "10", "11", "12", "13")),
    "shoe_width": ("width", ("narrow", "regular", "wide")),
    "bag_color": ("color", ("black", "grey", "navy", "olive", "tan", "burgundy", "camo", "charcoal")),
    "tech_color": ("color", ("black", "white", "silver", "blue", "red", "graphite", "gold", "green", "purple")),
    "cable_length": ("size", ("3 ft", "6 ft", "10 ft", "1 meter", "2 meters")),
    "battery_capacity": ("capacity", ("5000mah", "10000mah", "26800mah")),
    "phone_model": ("style", ("iphone 13", "iphone 14 pro", "iphone 15 plus", "galaxy s23", "galaxy a54", "pixel 8")),
    "lip_color": ("color", ("ruby", "nude", "berry", "coral", "plum", "mauve", "crimson", "blush", "peach",
                            "wine", "scarlet")),
    "scent": ("scent", ("lavender", "vanilla", "eucalyptus", "unscented", "citrus", "sandalwood", "cucumber",
                        "coconut")),
    "beauty_volume": ("size", ("travel size", "regular", "family size", "value bundle")),
    "beauty_count": ("item package quantity", ("1", "2", "3", "4", "6")),
    "tool_color": ("color", ("black", "white", "pink", "purple", "silver", "teal")),
    "snack_flavor": ("flavor name", ("chocolate", "peanut butter", "vanilla", "strawberry", "salted caramel",
                                     "cinnamon", "blueberry", "lemon", "mixed berry")),
    "jerky_flavor": ("flavor name", ("original", "teriyaki", "peppered", "sweet and spicy", "hickory smoked",
                                     "jalapeno")),
    "coffee_roast": ("flavor name", ("light roast", "medium roast", "dark roast", "espresso", "decaf",
                                     "hazelnut")),
    "tea_flavor": ("flavor name", ("chamomile", "peppermint", "ginger", "hibiscus", "rooibos", "lemongrass")),
    "snack_count": ("size", ("12 count", "30 count", "6 pack", "party size")),
    "pantry_size": ("size", ("500 ml", "1 liter", "gallon", "twin pack")),
    "wood_color": ("color", ("black", "white", "espresso", "walnut", "oak", "grey", "natural", "cherry")),
    "upholstery_color": ("color", ("black", "grey", "beige", "navy", "green", "brown", "ivory", "blue")),
    "bed_size": ("size", ("twin", "full", "queen", "king")),
    "stool_height": ("size", ("24 inch", "30 inch", "counter height", "bar height")),
    "gear_color": ("color", ("black", "blue", "purple", "pink", "green", "grey", "teal", "orange", "red")),
    "mat_thickness": ("size", ("4mm", "6mm", "8mm", "10mm")),
    "bottle_capacity": ("capacity", ("18 oz", "24 oz", "32 oz", "40 oz", "64 oz")),
    "dumbbell_weight": ("weight", ("3 lb", "8 lb", "12 lb", "20 lb", "40 lb")),
    "tent_capacity": ("size", ("two person", "four person", "six person", "eight person")),
    "band_set": ("style", ("light", "medium resistance", "heavy", "set of 5")),
}


@dataclass(frozen=True)
class Department:
    key: str  # the product's `category` field, as in the original (beauty, electronics, ...)
    root: str  # the first element of every product category path


DEPARTMENTS: dict[str, Department] = {
    d.key: d
    for d in (
        Department("beauty", "Beauty & Personal Care"),
        Department("electronics", "Electronics"),
        Department("fashion", "Clothing, Shoes & Jewelry"),
        Department("food", "Grocery & Gourmet Food"),
        Department("furniture", "Home & Kitchen"),
        Department("sports", "Sports & Outdoors"),
    )
}


@dataclass(frozen=True)
class ProductType:
    key: str
    department: str
    path: tuple[str, ...]  # below the department root
    phrase: str  # how goals and queries name it, lower case
    nouns: tuple[str, ...]  # title nouns; a product uses one
    attributes: tuple[str, ...]  # the pool a product draws from
    options: tuple[str, ...]  # OPTION_SETS keys, at most 3
    price: tuple[float, float]  # family base price range in dollars

    @property
    def category_path(self) -> str:
        return " › ".join((DEPARTMENTS[self.department].root, *self.path))


def _t(key, department, path, phrase, nouns, attributes, options, price) -> ProductType:
    return ProductType(key, department, tuple(path.split(" / ")), phrase, tuple(nouns), tuple(attributes),
                       tuple(options), price)


PRODUCT_TYPES: tuple[ProductType, ...] = (
    # beauty
    _t("body_scrub", "beauty", "Skin Care / Body / Scrubs & Body Treatments", "body scrub",
       ["Body Scrub", "Exfoliating Scrub"],
       ["cruelty free", "paraben free", "vegan", "non toxic", "dermatologist tested", "tea tree", "coconut oil",
        "shea butter", "green tea", "natural ingredients", "sensitive skin", "dry skin", "dead skin", "oily skin"],
       ["scent", "beauty_volume"], (8, 45)),
    _t("face_moisturizer", "beauty", "Skin Care / Face / Moisturizers", "face moisturizer",
       ["Face Moisturizer", "Facial Cream"],
       ["fragrance free", "oil free", "hypoallergenic", "clinically proven", "dermatologist tested", "paraben free",
        "hyaluronic acid", "vitamin c", "aloe vera", "green tea", "sensitive skin", "fine lines", "dark circles",
        "oily skin"],
       ["beauty_volume"], (10, 80)),
    _t("shampoo", "beauty", "Hair Care / Shampoo & Conditioner / Shampoos", "shampoo", ["Shampoo", "Hair Wash"],
       ["sulfate free", "paraben free", "cruelty free", "vegan", "fragrance free", "argan oil", "coconut oil",
        "tea tree", "aloe vera", "natural ingredients", "dry hair", "hair growth", "damaged hair", "curly hair"],
       ["scent", "beauty_volume"], (6, 40)),
    _t("lipstick", "beauty", "Makeup / Lips / Lipstick", "lipstick", ["Lipstick", "Lip Color"],
       ["long lasting", "highly pigmented", "cruelty free", "vegan", "paraben free", "easy apply", "non toxic",
        "matte finish", "shea butter", "vitamin c", "natural ingredients", "storage case"],
       ["lip_color", "beauty_count"], (5, 35)),
    _t("nail_polish", "beauty", "Foot, Hand & Nail Care / Nail Art & Polish / Nail Polish", "nail polish",
       ["Nail Polish", "Nail Lacquer"],
       ["long lasting", "quick dry", "non toxic", "vegan", "cruelty free", "highly pigmented", "easy apply",
        "travel size", "matte finish", "vitamin c", "storage case"],
       ["lip_color", "beauty_count"], (4, 25)),
    _t("makeup_brushes", "beauty", "Tools & Accessories / Makeup Brushes & Tools / Brush Sets", "makeup brush set",
       ["Makeup Brush Set", "Cosmetic Brushes"],
       ["cruelty free", "vegan", "travel size", "easy apply", "hypoallergenic", "long lasting", "storage case",
        "natural ingredients", "sensitive skin", "fine lines"],
       ["tool_color", "beauty_count"], (7, 50)),
    _t("hair_dryer", "beauty", "Hair Care / Styling Tools & Appliances / Hair Dryers", "hair dryer",
       ["Hair Dryer", "Blow Dryer"],
       ["quick dry", "travel size", "long lasting", "easy apply", "ceramic plates", "storage case",
        "damaged hair", "curly hair", "hair growth", "hypoallergenic"],
       ["tool_color"], (18, 160)),
    _t("deodorant", "beauty", "Personal Care / Deodorants & Antiperspirants", "deodorant",
       ["Deodorant", "Deodorant Stick"],
       ["alcohol free", "long lasting", "cruelty free", "paraben free", "vegan",
        "travel size", "coconut oil", "shea butter", "aloe vera", "natural ingredients", "sensitive skin"],
       ["scent", "beauty_count"], (4, 24)),
    # electronics
    _t("earbuds", "electronics", "Headphones, Earbuds & Accessories / Earbud Headphones", "wireless earbuds",
       ["Wireless Earbuds", "Bluetooth Earphones"],
       ["noise cancelling", "water resistant", "fast charging", "hands free", "wireless charging", "lightweight design",
        "rechargeable", "stereo sound", "touch control", "carrying case", "built in microphone", "iphone",
        "gaming", "workouts", "samsung galaxy"],
       ["tech_color"], (15, 180)),
    _t("bluetooth_speaker", "electronics", "Portable Audio & Video / Portable Bluetooth Speakers",
       "bluetooth speaker", ["Bluetooth Speaker", "Portable Speaker"],
       ["water resistant", "heavy duty", "rechargeable", "hands free", "shockproof", "lightweight design",
        "stereo sound", "built in microphone", "led display", "carrying case", "outdoor use", "home office",
        "car travel"],
       ["tech_color"], (20, 200)),
    _t("phone_case", "electronics", "Cell Phones & Accessories / Cases, Holsters & Sleeves / Basic Cases",
       "phone case", ["Phone Case", "Protective Cover"],
       ["shockproof", "ultra slim", "wireless charging", "heavy duty", "water resistant", "tempered glass",
        "magnetic mount", "aluminum alloy", "touch control", "iphone", "samsung galaxy", "car travel"],
       ["tech_color", "phone_model"], (6, 45)),
    _t("usb_cable", "electronics", "Computers & Accessories / Cables / USB Cables", "charging cable",
       ["Charging Cable", "Charger Cord"],
       ["fast charging", "high speed", "heavy duty", "plug and play", "usb c", "braided nylon", "aluminum alloy",
        "led display", "iphone", "laptops", "samsung galaxy", "car travel"],
       ["tech_color", "cable_length"], (5, 30)),
    _t("power_bank", "electronics", "Cell Phones & Accessories / Chargers & Power Adapters / Portable Power Banks",
       "portable power bank", ["Power Bank", "Portable Charger"],
       ["fast charging", "wireless charging", "ultra slim", "rechargeable", "lightweight design", "shockproof",
        "usb c", "led display", "aluminum alloy", "iphone", "samsung galaxy", "laptops", "outdoor use"],
       ["tech_color", "battery_capacity"], (15, 90)),
    _t("wireless_mouse", "electronics", "Computers & Accessories / Keyboards, Mice & Accessories / Mice",
       "wireless mouse", ["Wireless Mouse", "Computer Mouse"],
       ["plug and play", "rechargeable", "ultra slim", "dual band", "lightweight design", "high speed", "usb c",
        "touch control", "led display", "home office", "gaming", "laptops"],
       ["tech_color"], (8, 70)),
    _t("security_camera", "electronics", "Camera & Photo / Video Surveillance / Surveillance Cameras",
       "security camera", ["Security Camera", "Surveillance Camera"],
       ["high definition", "water resistant", "easy install", "dual band", "wireless charging", "heavy duty",
        "motion detection", "night vision", "built in microphone", "magnetic mount", "home security",
        "outdoor use", "home office"],
       ["tech_color"], (25, 220)),
    # fashion
    _t("womens_jumpsuit", "fashion", "Women / Clothing / Jumpsuits, Rompers & Overalls", "women's jumpsuits",
       ["Jumpsuit", "Romper"],
       ["machine wash", "hand wash", "slim fit", "relaxed fit", "button closure", "stretchy", "tummy control",
        "polyester spandex", "cotton blend", "short sleeve", "long sleeve", "high waist", "side pockets",
        "daily wear", "beach", "office wear"],
       ["apparel_color", "apparel_size"], (15, 60)),
    _t("mens_tshirt", "fashion", "Men / Clothing / Shirts / T-Shirts", "men's t-shirts", ["T-Shirt", "Tee Shirt"],
       ["machine wash", "slim fit", "relaxed fit", "moisture wicking", "quick drying", "wrinkle free", "breathable",
        "anti odor", "cotton blend", "polyester spandex", "short sleeve", "long sleeve", "gym workout",
        "daily wear", "office wear", "travel"],
       ["apparel_color", "apparel_size"], (8, 40)),
    _t("womens_leggings", "fashion", "Women / Clothing / Active / Active Leggings", "women's leggings",
       ["Leggings", "Athletic Pants"],
       ["machine wash", "tummy control", "moisture wicking", "quick drying", "stretchy", "breathable", "slim fit",
        "polyester spandex", "cotton blend", "high waist", "side pockets", "yoga", "gym workout", "daily wear",
        "winter"],
       ["apparel_color", "apparel_size"], (12, 50)),
    _t("womens_running_shoes", "fashion", "Women / Shoes / Athletic / Running", "women's running shoes",
       ["Running Shoes", "Sneakers"],
       ["non slip", "lace up", "breathable", "waterproof", "machine wash",
        "rubber sole", "memory foam", "arch support", "ankle support", "trail", "walking", "gym workout",
        "daily wear"],
       ["apparel_color", "shoe_size", "shoe_width"], (30, 150)),
    _t("mens_hiking_boots", "fashion", "Men / Shoes / Outdoor / Hiking & Trekking", "men's hiking boots",
       ["Hiking Boots", "Trekking Boots"],
       ["waterproof", "non slip", "lace up", "breathable", "anti odor", "rubber sole", "steel toe",
        "memory foam", "arch support", "ankle support", "trail", "office wear", "winter", "walking"],
       ["bag_color", "shoe_size", "shoe_width"], (40, 190)),
    _t("backpack", "fashion", "Luggage & Travel Gear / Backpacks / Casual Daypacks", "backpack",
       ["Backpack", "Daypack"],
       ["waterproof", "anti odor", "breathable", "wrinkle free", "drawstring closure", "padded shoulder straps",
        "laptop sleeve", "side pockets", "faux fur", "school", "travel", "office wear", "trail"],
       ["bag_color"], (20, 120)),
    # food
    _t("protein_bars", "food", "Snack Foods / Bars / Protein Bars", "protein bars", ["Protein Bars", "Snack Bars"],
       ["gluten free", "sugar free", "non gmo", "keto friendly", "low carb", "dairy free", "high protein",
        "plant based", "individually wrapped", "kosher", "almond butter", "real fruit", "sea salt",
        "whole grains", "athletes", "weight loss", "snacking"],
       ["snack_flavor", "snack_count"], (10, 45)),
    _t("ground_coffee", "food", "Beverages / Coffee, Tea & Cocoa / Coffee / Ground Coffee", "ground coffee",
       ["Ground Coffee", "Coffee Blend"],
       ["usda organic", "fair trade", "non gmo", "kosher", "low calorie", "shelf stable", "sugar free",
        "cold pressed", "no artificial flavors", "resealable bag", "breakfast", "gift"],
       ["coffee_roast", "snack_count"], (8, 40)),
    _t("herbal_tea", "food", "Beverages / Coffee, Tea & Cocoa / Tea / Herbal", "herbal tea", ["Herbal Tea", "Tea Bags"],
       ["caffeine free", "usda organic", "non gmo", "kosher", "fair trade", "sugar free", "low calorie",
        "gluten free", "no artificial flavors", "probiotics", "real fruit", "gift", "weight loss", "breakfast"],
       ["tea_flavor", "snack_count"], (5, 30)),
    _t("beef_jerky", "food", "Snack Foods / Jerky & Dried Meats / Jerky", "beef jerky", ["Beef Jerky", "Jerky Sticks"],
       ["grass fed", "high protein", "gluten free", "keto friendly", "low carb", "sugar free", "shelf stable",
        "individually wrapped", "non gmo", "sea salt", "no artificial flavors", "resealable bag", "snacking",
        "athletes", "lunch boxes"],
       ["jerky_flavor", "snack_count"], (7, 45)),
    _t("olive_oil", "food", "Pantry Staples / Cooking & Baking / Oils / Olive Oil", "extra virgin olive oil",
       ["Olive Oil", "Cooking Oil"],
       ["usda organic", "non gmo", "kosher", "plant based", "gluten free", "fair trade", "cold pressed",
        "no artificial flavors", "whole grains", "gift", "breakfast"],
       ["pantry_size"], (8, 60)),
    _t("trail_mix", "food", "Snack Foods / Nuts & Seeds / Trail Mix", "trail mix", ["Trail Mix", "Nut Mix"],
       ["gluten free", "non gmo", "keto friendly", "dairy free", "high protein", "plant based", "kosher",
        "individually wrapped", "shelf stable", "real fruit", "sea salt", "resealable bag", "snacking", "kids",
        "lunch boxes"],
       ["snack_flavor", "snack_count"], (6, 35)),
    # furniture
    _t("bar_stool", "furniture", "Furniture / Kitchen & Dining Room Furniture / Bar Stools", "bar stools",
       ["Bar Stools", "Counter Stools"],
       ["swivel", "height adjustable", "easy assemble", "mid century", "sturdy", "button tufted",
        "scratch resistant", "faux leather", "metal frame", "footrest", "velvet fabric", "solid wood",
        "kitchen island", "dining room", "apartment"],
       ["upholstery_color", "stool_height"], (40, 300)),
    _t("office_chair", "furniture", "Furniture / Home Office Furniture / Home Office Chairs / Desk Chairs",
       "office chair", ["Office Chair", "Desk Chair"],
       ["height adjustable", "lumbar support", "swivel", "easy assemble", "mid century", "button tufted", "sturdy",
        "faux leather", "velvet fabric", "footrest", "wheels", "metal frame", "home office", "gaming setup",
        "bedroom"],
       ["upholstery_color"], (50, 400)),
    _t("bookcase", "furniture", "Furniture / Living Room Furniture / Bookcases", "bookcase",
       ["Bookcase", "Bookshelf"],
       ["easy assemble", "space saving", "sturdy", "rustic", "mid century", "scratch resistant", "foldable",
        "solid wood", "metal frame", "open shelves", "drawers", "storage space", "living room", "home office",
        "small spaces"],
       ["wood_color"], (35, 350)),
    _t("bed_frame", "furniture", "Furniture / Bedroom Furniture / Beds, Frames & Bases / Bed Frames", "bed frame",
       ["Bed Frame", "Platform Bed"],
       ["easy assemble", "sturdy", "mid century", "button tufted", "rustic", "space saving", "solid wood",
        "metal frame", "headboard", "storage space", "drawers", "velvet fabric", "bedroom", "apartment",
        "small spaces"],
       ["wood_color", "bed_size"], (90, 900)),
    _t("coffee_table", "furniture", "Furniture / Living Room Furniture / Tables / Coffee Tables", "coffee table",
       ["Coffee Table", "Cocktail Table"],
       ["easy assemble", "mid century", "rustic", "sturdy", "scratch resistant", "foldable", "space saving",
        "solid wood", "metal frame", "tempered glass top", "drawers", "storage space", "living room",
        "apartment", "small spaces"],
       ["wood_color"], (45, 450)),
    _t("tv_stand", "furniture", "Furniture / Living Room Furniture / Television Stands & Entertainment Centers",
       "tv stand", ["TV Stand", "Entertainment Center"],
       ["easy assemble", "mid century", "rustic", "sturdy", "scratch resistant", "space saving", "solid wood",
        "metal frame", "cable management", "open shelves", "drawers", "tempered glass top", "living room",
        "bedroom", "gaming setup"],
       ["wood_color"], (60, 600)),
    # sports
    _t("yoga_mat", "sports", "Exercise & Fitness / Yoga / Mats", "yoga mat", ["Yoga Mat", "Exercise Mat"],
       ["non slip", "eco friendly", "extra thick", "anti tear", "high density", "easy carry", "portable",
        "carry strap", "alignment lines", "storage bag", "hot yoga", "pilates", "home gym", "physical therapy"],
       ["gear_color", "mat_thickness"], (12, 90)),
    _t("water_bottle", "sports", "Outdoor Recreation / Camping & Hiking / Hydration & Filtration / Water Bottles",
       "water bottle", ["Water Bottle", "Sports Bottle"],
       ["bpa free", "leak proof", "double wall", "insulated", "easy carry", "eco friendly", "rust proof",
        "stainless steel", "straw lid", "carry strap", "rubber coating", "hiking", "camping", "home gym"],
       ["gear_color", "bottle_capacity"], (8, 50)),
    _t("dumbbells", "sports", "Exercise & Fitness / Strength Training Equipment / Dumbbells", "dumbbells",
       ["Dumbbells", "Hand Weights"],
       ["non slip", "adjustable", "rust proof", "high density", "portable", "eco friendly", "hex design",
        "rubber coating", "stainless steel", "storage bag", "home gym", "strength training", "physical therapy"],
       ["gear_color", "dumbbell_weight"], (15, 250)),
    _t("camping_tent", "sports", "Outdoor Recreation / Camping & Hiking / Tents & Shelters / Tents", "camping tent",
       ["Camping Tent", "Dome Tent"],
       ["easy carry", "anti tear", "portable", "insulated", "eco friendly", "adjustable", "rainfly",
        "mesh windows", "carry strap", "storage bag", "festivals", "backpacking", "family", "hiking"],
       ["gear_color", "tent_capacity"], (45, 400)),
    _t("resistance_bands", "sports", "Exercise & Fitness / Accessories / Resistance Bands", "resistance bands",
       ["Resistance Bands", "Exercise Bands"],
       ["non slip", "anti tear", "eco friendly", "portable", "adjustable", "easy carry", "door anchor",
        "storage bag", "carry strap", "home gym", "pilates", "physical therapy", "strength training"],
       ["gear_color", "band_set"], (8, 45)),
)

# --- names -------------------------------------------------------------------------------------

BRAND_HEADS = ("Al", "Bri", "Cor", "Dav", "El", "Fen", "Gal", "Hal", "Iv", "Jor", "Kel", "Lum", "Mar",
               "Nov", "Or", "Pel", "Quin", "Sol", "Tav", "Ul", "Ver", "Wyn", "Xan", "Yar", "Zel", "Bel")
BRAND_TAILS = ("ora", "ex", "ina", "ix", "ano", "eo", "ara", "us", "ia", "en")
SERIES_NAMES = ("Aria", "Nova", "Pulse", "Vista", "Echo", "Flex", "Core", "Edge", "Zen", "Peak", "Drift", "Glide",
                "Halo", "Luxe", "Orbit", "Prime", "Quest", "Rise", "Swift", "Terra", "Vibe", "Wave", "Atlas",
                "Bloom", "Crest", "Dune", "Ember", "Fjord", "Grove", "Harbor", "Iris", "Juno")
SERIES_MARKS = ("", " 2", " 3", " X", " Pro", " Max", " Lite", " One", " S", " Air")

BRANDS: tuple[str, ...] = tuple(head + tail for head in BRAND_HEADS for tail in BRAND_TAILS)
N_SERIES = len(SERIES_NAMES) * len(SERIES_MARKS)


def series_name(series: int) -> str:
    return SERIES_NAMES[series % len(SERIES_NAMES)] + SERIES_MARKS[(series // len(SERIES_NAMES)) % len(SERIES_MARKS)]
