//! The seeded data generator: the base data of a fresh shop (sales channel, EUR, taxes,
//! countries, languages, payment and shipping methods, salutations, root category, state
//! machines), then optionally products (a share in variant families), customers and orders.
//! Everything, ids and timestamps included, follows from the seed.

use rand::Rng;
use serde_json::{Map, Value, json};

use crate::ShopwareOptions;
use crate::entities::{self, Kind};
use crate::ids::Id;
use crate::shop::{DEFAULT_CURRENCY, SALES_CHANNEL_TYPE_STOREFRONT, SYSTEM_LANGUAGE, Shop, fixed};
use crate::storefront::{self, OrderCustomer, OrderLine, StorefrontOrder};
use crate::write::{Batch, Mode};

/// 2024-01-01T00:00:00Z: seeded rows are stamped from here on, one second apart.
const SEED_EPOCH_MILLIS: i64 = 1_704_067_200_000;

/// A property group: (name, id, options as (name, id)).
pub type PropertyGroupIds = (String, Id, Vec<(String, Id)>);

/// The ids of the base data.
#[derive(Clone, Debug, Default)]
pub struct ShopIds {
    pub sales_channel: Id,
    /// The default currency (EUR).
    pub currency: Id,
    /// (ISO code, id) of every currency: EUR (the default) and CHF.
    pub currencies: Vec<(String, Id)>,
    pub language: Id,
    pub customer_group: Id,
    pub root_category: Id,
    /// (name, id) of the root's child categories.
    pub categories: Vec<(String, Id)>,
    /// (rate, id): 19, 7 (Germany), 21, 9 (the Netherlands).
    pub taxes: Vec<(f64, Id)>,
    /// (ISO code, id).
    pub countries: Vec<(String, Id)>,
    /// (technical name, id).
    pub payment_methods: Vec<(String, Id)>,
    /// (technical name, id).
    pub shipping_methods: Vec<(String, Id)>,
    /// (salutation key, id).
    pub salutations: Vec<(String, Id)>,
    /// Size and Color with their options.
    pub property_groups: Vec<PropertyGroupIds>,
}

impl ShopIds {
    pub fn tax(&self, rate: f64) -> Option<Id> {
        self.taxes
            .iter()
            .find(|(r, _)| *r == rate)
            .map(|(_, id)| *id)
    }

    pub fn currency(&self, iso: &str) -> Option<Id> {
        find(&self.currencies, iso)
    }

    pub fn country(&self, iso: &str) -> Option<Id> {
        find(&self.countries, iso)
    }

    pub fn payment_method(&self, technical_name: &str) -> Option<Id> {
        find(&self.payment_methods, technical_name)
    }

    pub fn shipping_method(&self, technical_name: &str) -> Option<Id> {
        find(&self.shipping_methods, technical_name)
    }

    pub fn salutation(&self, key: &str) -> Option<Id> {
        find(&self.salutations, key)
    }
}

fn find(list: &[(String, Id)], key: &str) -> Option<Id> {
    list.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, id)| *id)
}

/// Drops the fields this version's schema does not have, at every depth, so one payload
/// serves every version.
pub fn fit(shop: &Shop, entity: usize, payload: Value) -> Value {
    let Value::Object(map) = payload else {
        return payload;
    };
    let def = entities::def(entity);
    let meta = shop.meta(entity);
    let mut out = Map::new();
    for (key, value) in map {
        if key != "translations" && meta.is_some_and(|m| !m.has(&key) || m.read_only.contains(&key))
        {
            continue;
        }
        let value = match (def.assoc(&key), value) {
            (Some(assoc), Value::Array(items)) => {
                let target = entities::index_of(assoc.target).unwrap_or(entity);
                Value::Array(items.into_iter().map(|i| fit(shop, target, i)).collect())
            }
            (Some(assoc), value @ Value::Object(_))
                if !matches!(assoc.kind, Kind::ManyToMany { .. }) =>
            {
                fit(
                    shop,
                    entities::index_of(assoc.target).unwrap_or(entity),
                    value,
                )
            }
            (_, value) => value,
        };
        out.insert(key, value);
    }
    Value::Object(out)
}

/// Writes one record through the normal write path (schema checks included unless
/// `trusted`); an error names the record.
pub fn put(shop: &mut Shop, entity: &str, payload: Value, trusted: bool) -> anyhow::Result<Id> {
    let index =
        entities::index_of(entity).ok_or_else(|| anyhow::anyhow!("unknown entity {entity}"))?;
    let payload = fit(shop, index, payload);
    let mut batch = Batch {
        trusted,
        ..Batch::default()
    };
    shop.store.begin();
    let id = shop.write(&mut batch, index, &payload, Mode::Upsert, "/0", None);
    match (id, batch.errors.first()) {
        (Some(id), None) => {
            shop.store.commit();
            Ok(id)
        }
        (_, error) => {
            shop.store.rollback();
            let detail = error
                .map(|e| format!("{} {} at {:?}", e.code, e.detail, e.pointer))
                .unwrap_or_default();
            anyhow::bail!("seeding {entity} failed: {detail}; payload {payload}")
        }
    }
}

fn key(name: &str) -> Id {
    Id::derive(&format!("seed:{name}"))
}

/// Builds the base data and the generated data.
pub fn seed(shop: &mut Shop, options: &ShopwareOptions) -> anyhow::Result<ShopIds> {
    shop.fixed_clock = Some(SEED_EPOCH_MILLIS);
    shop.seed_state_machines();
    let mut ids = ShopIds {
        currency: fixed(DEFAULT_CURRENCY),
        language: fixed(SYSTEM_LANGUAGE),
        ..ShopIds::default()
    };

    let locales = [
        ("en-GB", "English", "United Kingdom"),
        ("de-DE", "German", "Germany"),
        ("nl-NL", "Dutch", "Netherlands"),
    ];
    for (code, name, territory) in locales {
        put(
            shop,
            "locale",
            json!({"id": key(code).hex(), "code": code, "name": name, "territory": territory}),
            false,
        )?;
    }
    put(
        shop,
        "language",
        json!({"id": SYSTEM_LANGUAGE, "name": "English", "localeId": key("en-GB").hex(), "translationCodeId": key("en-GB").hex()}),
        false,
    )?;
    for (code, name) in [("de-DE", "Deutsch"), ("nl-NL", "Nederlands")] {
        put(
            shop,
            "language",
            json!({"id": key(&format!("language:{code}")).hex(), "name": name, "localeId": key(code).hex(), "translationCodeId": key(code).hex()}),
            false,
        )?;
    }
    let rounding = json!({"decimals": 2, "interval": 0.01, "roundForNet": true});
    put(
        shop,
        "currency",
        json!({"id": DEFAULT_CURRENCY, "isoCode": "EUR", "symbol": "€", "shortName": "EUR", "name": "Euro",
        "factor": 1.0, "position": 1, "decimalPrecision": 2, "itemRounding": rounding, "totalRounding": rounding, "isSystemDefault": true}),
        false,
    )?;
    // A second currency, as shops selling abroad have: prices in it are optional, the default
    // currency's are required.
    ids.currencies.push(("EUR".into(), ids.currency));
    let chf = put(
        shop,
        "currency",
        json!({"id": key("currency:CHF").hex(), "isoCode": "CHF", "symbol": "CHF", "shortName": "CHF", "name": "Swiss franc",
        "factor": 0.94, "position": 2, "decimalPrecision": 2, "itemRounding": rounding, "totalRounding": rounding, "isSystemDefault": false}),
        false,
    )?;
    ids.currencies.push(("CHF".into(), chf));
    for (rate, name) in [
        (19.0, "Standard rate"),
        (7.0, "Reduced rate"),
        (21.0, "Standaard tarief"),
        (9.0, "Verlaagd tarief"),
    ] {
        let id = put(
            shop,
            "tax",
            json!({"id": key(&format!("tax:{rate}")).hex(), "taxRate": rate, "name": name, "position": 1}),
            false,
        )?;
        ids.taxes.push((rate, id));
    }
    let countries = [
        ("DE", "DEU", "Germany"),
        ("NL", "NLD", "Netherlands"),
        ("BE", "BEL", "Belgium"),
        ("AT", "AUT", "Austria"),
        ("FR", "FRA", "France"),
        ("GB", "GBR", "United Kingdom"),
        ("CH", "CHE", "Switzerland"),
        ("US", "USA", "USA"),
    ];
    for (i, (iso, iso3, name)) in countries.iter().enumerate() {
        let eu = !matches!(*iso, "GB" | "CH" | "US");
        let id = put(
            shop,
            "country",
            json!({"id": key(&format!("country:{iso}")).hex(), "iso": iso, "iso3": iso3, "name": name,
            "active": true, "shippingAvailable": true, "position": i + 1, "isEu": eu}),
            false,
        )?;
        ids.countries.push((iso.to_string(), id));
    }
    for (salutation_key, display, letter) in [
        ("mr", "Mr.", "Dear Mr."),
        ("mrs", "Mrs.", "Dear Mrs."),
        ("not_specified", "Not specified", "Dear Customer"),
    ] {
        let id = put(
            shop,
            "salutation",
            json!({"id": key(&format!("salutation:{salutation_key}")).hex(), "salutationKey": salutation_key,
            "displayName": display, "letterName": letter}),
            false,
        )?;
        ids.salutations.push((salutation_key.to_string(), id));
    }
    ids.customer_group = put(
        shop,
        "customer_group",
        json!({"id": key("customer_group").hex(), "name": "Standard customer group", "displayGross": true}),
        false,
    )?;
    let delivery_time = put(
        shop,
        "delivery_time",
        json!({"id": key("delivery_time").hex(), "name": "1-3 days", "min": 1, "max": 3, "unit": "day"}),
        false,
    )?;
    let rule = put(
        shop,
        "rule",
        json!({"id": key("rule:always").hex(), "name": "Always valid (Default)", "priority": 100}),
        false,
    )?;
    let payments = [
        ("payment_invoice", "Invoice"),
        ("payment_cashpayment", "Cash on delivery"),
        ("payment_prepayment", "Paid in advance"),
        ("payment_debitpayment", "Direct Debit"),
    ];
    for (i, (technical, name)) in payments.iter().enumerate() {
        let id = put(
            shop,
            "payment_method",
            json!({"id": key(technical).hex(), "technicalName": technical, "name": name,
            "active": true, "position": i + 1, "afterOrderEnabled": true}),
            false,
        )?;
        ids.payment_methods.push((technical.to_string(), id));
    }
    let shippings = [
        ("shipping_standard", "Standard"),
        ("shipping_express", "Express"),
        ("shipping_pickup", "Pick-up in store"),
    ];
    for (i, (technical, name)) in shippings.iter().enumerate() {
        let id = put(
            shop,
            "shipping_method",
            json!({"id": key(technical).hex(), "technicalName": technical, "name": name,
            "active": true, "position": i + 1, "deliveryTimeId": delivery_time.hex(), "availabilityRuleId": rule.hex(), "taxType": "auto"}),
            false,
        )?;
        ids.shipping_methods.push((technical.to_string(), id));
    }
    put(
        shop,
        "sales_channel_type",
        json!({"id": SALES_CHANNEL_TYPE_STOREFRONT, "name": "Storefront", "iconName": "regular-storefront"}),
        false,
    )?;
    ids.root_category = put(
        shop,
        "category",
        json!({"id": key("category:home").hex(), "name": "Home", "active": true, "type": "page"}),
        false,
    )?;
    for name in ["Clothing", "Shoes", "Accessories", "Home & Living"] {
        let id = put(
            shop,
            "category",
            json!({"id": key(&format!("category:{name}")).hex(), "parentId": ids.root_category.hex(), "name": name, "active": true}),
            false,
        )?;
        ids.categories.push((name.to_string(), id));
    }
    ids.sales_channel = put(
        shop,
        "sales_channel",
        json!({
        "id": key("sales_channel:storefront").hex(), "name": "Storefront", "typeId": SALES_CHANNEL_TYPE_STOREFRONT,
        "accessKey": "SWSCKOPPELSIMULATORSTOREFRONT", "languageId": SYSTEM_LANGUAGE, "customerGroupId": ids.customer_group.hex(),
        "currencyId": DEFAULT_CURRENCY, "paymentMethodId": key("payment_invoice").hex(), "shippingMethodId": key("shipping_standard").hex(),
        "countryId": key("country:DE").hex(), "navigationCategoryId": ids.root_category.hex(), "active": true, "homeEnabled": true}),
        false,
    )?;
    let groups = [
        ("Size", "text", vec!["S", "M", "L", "XL"]),
        (
            "Color",
            "color",
            vec!["Red", "Blue", "Black", "White", "Green"],
        ),
    ];
    for (name, display, options) in groups {
        let group = key(&format!("group:{name}"));
        let opts: Vec<(String, Id)> = options
            .iter()
            .map(|o| (o.to_string(), key(&format!("option:{name}:{o}"))))
            .collect();
        let payload = json!({"id": group.hex(), "name": name, "displayType": display, "sortingType": "position", "filterable": true,
            "options": opts.iter().enumerate().map(|(i, (o, id))| json!({"id": id.hex(), "name": o, "position": i + 1})).collect::<Vec<_>>()});
        put(shop, "property_group", payload, false)?;
        ids.property_groups.push((name.to_string(), group, opts));
    }

    generate_products(shop, &ids, options)?;
    let customers = generate_customers(shop, &ids, options)?;
    generate_orders(shop, &ids, options, &customers)?;
    shop.fixed_clock = None;
    Ok(ids)
}

const ADJECTIVES: &[&str] = &[
    "Basic", "Classic", "Premium", "Organic", "Vintage", "Sport", "Urban", "Cozy", "Light",
    "Rugged",
];
const MATERIALS: &[&str] = &[
    "Cotton", "Wool", "Leather", "Linen", "Denim", "Bamboo", "Canvas",
];
const NOUNS: &[&str] = &[
    "T-Shirt", "Hoodie", "Sneaker", "Cap", "Backpack", "Scarf", "Jacket", "Sock", "Belt",
    "Tote Bag", "Beanie",
];

fn ean(rng: &mut impl Rng) -> String {
    let digits: Vec<u32> = (0..12)
        .map(|i| {
            if i == 0 {
                rng.random_range(1..10)
            } else {
                rng.random_range(0..10)
            }
        })
        .collect();
    let sum: u32 = digits
        .iter()
        .enumerate()
        .map(|(i, d)| if i % 2 == 0 { *d } else { d * 3 })
        .sum();
    let check = (10 - sum % 10) % 10;
    digits
        .iter()
        .map(|d| char::from_digit(*d, 10).unwrap_or('0'))
        .chain(std::iter::once(char::from_digit(check, 10).unwrap_or('0')))
        .collect()
}

fn price(gross: f64, rate: f64) -> Value {
    let net = (gross / (1.0 + rate / 100.0) * 100.0).round() / 100.0;
    json!([{"currencyId": DEFAULT_CURRENCY, "gross": gross, "net": net, "linked": true}])
}

fn generate_products(
    shop: &mut Shop,
    ids: &ShopIds,
    options: &ShopwareOptions,
) -> anyhow::Result<()> {
    let mut made = 0usize;
    let mut number = 10000u64;
    let sizes = ids
        .property_groups
        .first()
        .map(|g| g.2.clone())
        .unwrap_or_default();
    let colors = ids
        .property_groups
        .get(1)
        .map(|g| g.2.clone())
        .unwrap_or_default();
    while made < options.products {
        let family = shop.rng.random_bool(options.variant_share.clamp(0.0, 1.0));
        let name = format!(
            "{} {} {}",
            ADJECTIVES[shop.rng.random_range(0..ADJECTIVES.len())],
            MATERIALS[shop.rng.random_range(0..MATERIALS.len())],
            NOUNS[shop.rng.random_range(0..NOUNS.len())]
        );
        let rate = if shop.rng.random_bool(0.85) {
            19.0
        } else {
            7.0
        };
        let gross = (shop.rng.random_range(499..19999) as f64) / 100.0;
        let category = ids.categories[shop.rng.random_range(0..ids.categories.len().max(1))].1;
        let product_number = format!("SW{number}");
        number += 1;
        let id = shop.random_id();
        let mut payload = json!({
            "id": id.hex(), "productNumber": product_number, "name": name, "active": true,
            "taxId": ids.tax(rate).unwrap_or_default().hex(), "price": price(gross, rate),
            "stock": if family { 0 } else { shop.rng.random_range(0..100) },
            "ean": ean(&mut shop.rng),
            "description": format!("<p>{name}, made with care.</p>"),
            "visibilities": [{"id": Id::derive(&format!("visibility:{}", id.hex())).hex(), "salesChannelId": ids.sales_channel.hex(), "visibility": 30}],
            "categories": [{"id": category.hex()}],
        });
        made += 1;
        if family && !sizes.is_empty() && !colors.is_empty() {
            let size_count = shop.rng.random_range(1..=sizes.len());
            let color_count = shop.rng.random_range(1..=colors.len().min(3));
            let mut combos = Vec::new();
            for size in sizes.iter().take(size_count) {
                for color in colors
                    .iter()
                    .skip(shop.rng.random_range(0..colors.len() - color_count + 1))
                    .take(color_count)
                {
                    combos.push((size.clone(), color.clone()));
                }
            }
            let mut settings: Vec<Value> = Vec::new();
            let mut used: Vec<Id> = Vec::new();
            for (_, option) in combos.iter().flat_map(|(s, c)| [s.clone(), c.clone()]) {
                if !used.contains(&option) {
                    used.push(option);
                    settings.push(json!({"id": Id::derive(&format!("setting:{}:{}", id.hex(), option.hex())).hex(), "optionId": option.hex()}));
                }
            }
            payload["configuratorSettings"] = Value::Array(settings);
            put(shop, "product", payload, true)?;
            for (i, ((size, size_id), (color, color_id))) in combos.into_iter().enumerate() {
                if made >= options.products {
                    break;
                }
                let variant = shop.random_id();
                let mut variant_payload = json!({
                    "id": variant.hex(), "parentId": id.hex(), "productNumber": format!("{product_number}.{}", i + 1),
                    "stock": shop.rng.random_range(0..50), "ean": ean(&mut shop.rng),
                    "options": [{"id": size_id.hex()}, {"id": color_id.hex()}],
                });
                if shop.rng.random_bool(0.2) {
                    variant_payload["price"] = price(gross + 2.0, rate);
                }
                let _ = (&size, &color);
                put(shop, "product", variant_payload, true)?;
                made += 1;
            }
        } else {
            put(shop, "product", payload, true)?;
        }
    }
    Ok(())
}

const FIRST_NAMES: &[&str] = &[
    "Anna", "Jan", "Sophie", "Lukas", "Emma", "Daan", "Lea", "Noah", "Julia", "Finn", "Marie",
    "Sem",
];
const LAST_NAMES: &[&str] = &[
    "Muster", "de Vries", "Schmidt", "Jansen", "Müller", "Bakker", "Weber", "Visser", "Peeters",
    "Dubois",
];
const CITIES: &[(&str, &str, &str)] = &[
    ("DE", "Berlin", "10115"),
    ("NL", "Amsterdam", "1012 AB"),
    ("BE", "Antwerpen", "2000"),
    ("AT", "Wien", "1010"),
    ("FR", "Paris", "75001"),
];

fn generate_customers(
    shop: &mut Shop,
    ids: &ShopIds,
    options: &ShopwareOptions,
) -> anyhow::Result<Vec<OrderCustomer>> {
    let mut out = Vec::new();
    for i in 0..options.customers {
        let first = FIRST_NAMES[shop.rng.random_range(0..FIRST_NAMES.len())];
        let last = LAST_NAMES[shop.rng.random_range(0..LAST_NAMES.len())];
        let (country, city, zipcode) = CITIES[shop.rng.random_range(0..CITIES.len())];
        let company = shop
            .rng
            .random_bool(0.3)
            .then(|| format!("{last} {}", ["GmbH", "B.V.", "BV", "SARL", "KG"][i % 5]));
        let customer = OrderCustomer {
            email: format!(
                "{}.{}{i}@example.com",
                first.to_lowercase(),
                last.to_lowercase().replace(' ', "")
            ),
            first_name: first.into(),
            last_name: last.into(),
            company,
            country: country.into(),
            street: format!("Hauptstraße {}", i + 1),
            zipcode: zipcode.into(),
            city: city.into(),
            salutation: if i % 2 == 0 {
                "mrs".into()
            } else {
                "mr".into()
            },
        };
        storefront::ensure_customer(shop, ids, &customer)?;
        out.push(customer);
    }
    Ok(out)
}

fn generate_orders(
    shop: &mut Shop,
    ids: &ShopIds,
    options: &ShopwareOptions,
    customers: &[OrderCustomer],
) -> anyhow::Result<()> {
    if options.orders == 0 {
        return Ok(());
    }
    let sellable: Vec<String> = shop
        .table(0)
        .iter()
        .filter(|(_, _, r)| {
            shop.get(r, "childCount")
                .and_then(|v| v.as_i64())
                .unwrap_or(0)
                == 0
        })
        .filter_map(|(_, _, r)| {
            shop.get(r, "productNumber")
                .and_then(|v| v.as_str())
                .map(str::to_string)
        })
        .collect();
    for i in 0..options.orders {
        let customer = match customers.get(i % customers.len().max(1)) {
            Some(c) => c.clone(),
            None => {
                OrderCustomer::private(&format!("guest{i}@example.com"), "Guest", "Buyer", "DE")
            }
        };
        let lines: Vec<OrderLine> = if sellable.is_empty() {
            vec![OrderLine::new(&format!("SW-ORDER-{i}"), 1)]
        } else {
            (0..shop.rng.random_range(1..=3))
                .map(|_| {
                    OrderLine::new(
                        &sellable[shop.rng.random_range(0..sellable.len())],
                        shop.rng.random_range(1..=3),
                    )
                })
                .collect()
        };
        let shipping = ["shipping_standard", "shipping_express", "shipping_pickup"]
            [shop.rng.random_range(0..3)];
        let payment = [
            "payment_invoice",
            "payment_prepayment",
            "payment_cashpayment",
        ][shop.rng.random_range(0..3)];
        let order = StorefrontOrder {
            paid: shop.rng.random_bool(0.5),
            shipping_method: shipping.into(),
            payment_method: payment.into(),
            create_missing_products: sellable.is_empty(),
            ..StorefrontOrder::new(customer, lines)
        };
        storefront::place(shop, ids, &order)?;
    }
    Ok(())
}
