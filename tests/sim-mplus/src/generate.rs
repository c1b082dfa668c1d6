//! The seeded data generator: the same seed gives the same shop, byte for byte. A Dutch
//! fashion-and-more shop: an article group tree, products (a share of them size/colour
//! families), EAN-13 barcodes, prices with NL VAT codes, stock per branch, persons and
//! companies, payment methods, branches with workplaces, employees (with 999999).

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};

use crate::model::{
    Article, ArticleGroup, Branch, Contact, Employee, LineInput, MILLI, OrderInput, PaymentInput,
    PaymentMethod, Relation, State, TurnoverGroup, excl_from_incl, vat_percentage,
};

/// The fixed clock of generated data: 2025-01-06 09:00 UTC.
pub const GENERATED_AT: i64 = 1_736_154_000;

/// The article every shop has for shipping costs (the vendor's example uses 999).
pub const SHIPPING_ARTICLE: i64 = 999;
/// The product that holds the shipping article.
pub const SHIPPING_PRODUCT: i64 = 999;
/// First number of generated products; generated articles start at `FIRST_ARTICLE`.
pub const FIRST_PRODUCT: i64 = 100_000;
pub const FIRST_ARTICLE: i64 = 1_000_000;
/// First number of generated relations.
pub const FIRST_RELATION: i64 = 10_001;

/// What to generate.
#[derive(Clone, Debug)]
pub struct Shape {
    pub seed: u64,
    pub products: usize,
    /// Share (0.0 to 1.0) of products that are size/colour families of 2 to 8 articles.
    pub variant_share: f64,
    pub relations: usize,
    pub branches: usize,
    /// Orders already in the till, on generated relations and articles.
    pub orders: usize,
}

const COLOURS: [&str; 10] = [
    "navy", "black", "white", "red", "green", "grey", "beige", "blue", "pink", "ochre",
];
const SIZES: [&str; 6] = ["XS", "S", "M", "L", "XL", "XXL"];
const ADJECTIVES: [&str; 12] = [
    "Merino", "Linen", "Cotton", "Wool", "Denim", "Organic", "Classic", "Slim", "Relaxed",
    "Vintage", "Recycled", "Summer",
];
const NOUNS: [&str; 12] = [
    "sweater", "shirt", "trousers", "dress", "jacket", "scarf", "cardigan", "skirt", "hoodie",
    "coat", "polo", "blouse",
];
const BOOKS: [&str; 6] = [
    "Cookbook",
    "Travel guide",
    "Novel",
    "Atlas",
    "Poetry",
    "Biography",
];
const FIRST_NAMES: [&str; 12] = [
    "Jan", "Sanne", "Pieter", "Emma", "Daan", "Lotte", "Bram", "Fleur", "Thijs", "Anouk", "Ruben",
    "Iris",
];
const LAST_NAMES: [&str; 12] = [
    "de Vries", "Jansen", "van Dijk", "Bakker", "Visser", "Smit", "Meijer", "de Boer", "Mulder",
    "de Groot", "Bos", "Vos",
];
const CITIES: [(&str, &str); 6] = [
    ("Amsterdam", "1012"),
    ("Utrecht", "3511"),
    ("Rotterdam", "3011"),
    ("Den Haag", "2511"),
    ("Eindhoven", "5611"),
    ("Groningen", "9711"),
];
const STREETS: [&str; 6] = [
    "Dorpsstraat",
    "Kerkweg",
    "Molenlaan",
    "Stationsplein",
    "Kanaalstraat",
    "Beukenlaan",
];
const TRADES: [&str; 6] = [
    "Bakkerij",
    "Boekhandel",
    "Modehuis",
    "Kantoor",
    "Atelier",
    "Reisbureau",
];

/// The EAN-13 check digit of 12 digits.
pub fn ean13_check_digit(digits12: u64) -> u64 {
    let mut sum = 0;
    let mut rest = digits12;
    // From the right: the last of the 12 digits has weight 3.
    for position in 0..12 {
        let digit = rest % 10;
        rest /= 10;
        sum += if position % 2 == 0 { digit * 3 } else { digit };
    }
    (10 - sum % 10) % 10
}

/// An EAN-13 from a Dutch (87x) prefix and a serial.
pub fn ean13(serial: u64) -> String {
    let body = 871_000_000_000 + serial % 1_000_000_000;
    format!("{body}{}", ean13_check_digit(body))
}

/// Fills an empty state with a shop of the given shape.
pub fn populate(state: &mut State, shape: &Shape) {
    let mut rng = StdRng::seed_from_u64(shape.seed);
    let at = GENERATED_AT;

    reference_data(state, shape.branches.max(1));
    let leaves = article_groups(state);

    // The shipping article: not a stock article, not for the webshop.
    let shipping = Article {
        number: SHIPPING_ARTICLE,
        product: 0,
        sync_marker: 0,
        created: at,
        changed: at,
        description: "Verzendkosten".into(),
        ext_id: "SHIPPING".into(),
        colour: "".into(),
        size: "".into(),
        barcode: "".into(),
        texts: None,
        purchase_price: 0,
        price_incl: 495,
        price_excl: excl_from_incl(495, 21),
        turnover_group: 90,
        vat_code: 1,
        barcode_id: 0,
        active: true,
        webshop: false,
        stock_article: false,
    };
    let _ = state.insert_product(
        SHIPPING_PRODUCT,
        "Verzendkosten".into(),
        "".into(),
        Box::new([]),
        vec![shipping],
        at,
    );

    let mut next_article = FIRST_ARTICLE;
    let mut sort_in_group = vec![0_i32; leaves.len()];
    for p in 0..shape.products {
        let number = FIRST_PRODUCT + p as i64;
        let leaf = rng.random_range(0..leaves.len());
        sort_in_group[leaf] += 1;
        let (group, kind) = leaves[leaf];
        let family = rng.random_bool(shape.variant_share.clamp(0.0, 1.0));
        let (description, turnover_group, vat_code) = match kind {
            GroupKind::Books => (
                format!(
                    "{} {}",
                    BOOKS.choose(&mut rng).unwrap_or(&"Book"),
                    p % 97 + 1
                ),
                20,
                2,
            ),
            GroupKind::GiftCards => (format!("Cadeaubon {}", (p % 5 + 1) * 10), 30, 3),
            GroupKind::Clothing => (
                format!(
                    "{} {}",
                    ADJECTIVES.choose(&mut rng).unwrap_or(&"Plain"),
                    NOUNS.choose(&mut rng).unwrap_or(&"shirt")
                ),
                10,
                1,
            ),
        };
        let price_incl = match kind {
            GroupKind::GiftCards => ((p % 5 + 1) * 1000) as i64,
            _ => rng.random_range(5..=150) * 100 - 5,
        };
        let variants: Vec<(&str, &str)> = if family && kind == GroupKind::Clothing {
            let colours = rng.random_range(1..=2);
            let sizes = rng.random_range(2..=4);
            let first_colour = rng.random_range(0..COLOURS.len());
            let first_size = rng.random_range(0..=SIZES.len() - sizes);
            (0..colours)
                .flat_map(|c| {
                    (0..sizes).map(move |s| {
                        (
                            COLOURS[(first_colour + c) % COLOURS.len()],
                            SIZES[first_size + s],
                        )
                    })
                })
                .collect()
        } else {
            vec![("", "")]
        };
        let webshop = rng.random_bool(0.9);
        let active = rng.random_bool(0.97);
        let purchase = price_incl * rng.random_range(30..=55) / 100;
        let articles = variants
            .iter()
            .map(|(colour, size)| {
                let article_number = next_article;
                next_article += 1;
                let description = match (colour.is_empty(), size.is_empty()) {
                    (true, _) => description.clone(),
                    _ => format!("{description} {colour} {size}"),
                };
                Article {
                    number: article_number,
                    product: 0,
                    sync_marker: 0,
                    created: at,
                    changed: at,
                    description: description.into(),
                    ext_id: format!("SKU-{article_number}").into(),
                    colour: (*colour).into(),
                    size: (*size).into(),
                    barcode: ean13(article_number as u64).into(),
                    texts: None,
                    purchase_price: purchase,
                    price_incl,
                    price_excl: excl_from_incl(price_incl, vat_percentage(vat_code)),
                    turnover_group,
                    vat_code,
                    barcode_id: 0,
                    active,
                    webshop,
                    stock_article: kind != GroupKind::GiftCards,
                }
            })
            .collect();
        let _ = state.insert_product(
            number,
            description.into(),
            "".into(),
            Box::new([(group, sort_in_group[leaf])]),
            articles,
            at,
        );
    }

    // Stock: every stock article in every branch; some sold out, some with reservations.
    for idx in 0..state.articles.len() {
        let article = &state.articles[idx];
        if !article.stock_article {
            continue;
        }
        for b in 0..state.branches.len() {
            let free = if rng.random_bool(0.1) {
                0
            } else {
                rng.random_range(1..=40)
            };
            let reserved = if rng.random_bool(0.15) {
                rng.random_range(1..=3)
            } else {
                0
            };
            let slot = idx * state.branches.len() + b;
            let rec = &mut state.stock[slot];
            rec.on_hand = (free + reserved) * MILLI;
            rec.reserved = reserved * MILLI;
            rec.incoming = if rng.random_bool(0.1) {
                rng.random_range(1..=24) * MILLI
            } else {
                0
            };
        }
    }

    relations(state, &mut rng, shape.relations);
    orders(state, &mut rng, shape.orders);
}

/// `count` orders of 1 to 3 webshop articles, a minute apart: about half from the webshop
/// (with an external order id), a third delivered, a quarter paid (and with that delivered
/// and invoiced), a few paid in advance; the rest open.
fn orders(state: &mut State, rng: &mut StdRng, count: usize) {
    let articles: Vec<i64> = state
        .articles
        .iter()
        .filter(|a| a.number != SHIPPING_ARTICLE && a.active && a.webshop)
        .map(|a| a.number)
        .collect();
    let relations: Vec<i64> = state.relations.iter().map(|r| r.number).collect();
    if articles.is_empty() || relations.is_empty() {
        return;
    }
    let branches: Vec<i32> = state.branches.iter().map(|b| b.number).collect();
    for i in 0..count {
        let at = GENERATED_AT + 60 * i as i64;
        let relation = *relations.choose(rng).unwrap_or(&relations[0]);
        let lines = (0..rng.random_range(1..=3))
            .map(|_| LineInput {
                article_number: *articles.choose(rng).unwrap_or(&articles[0]),
                text: None,
                quantity_milli: rng.random_range(1..=3) * MILLI,
                price: None,
                turnover_group: None,
                vat_code: None,
                ..LineInput::default()
            })
            .collect();
        let web = rng.random_bool(0.5);
        let input = OrderInput {
            ext_id: if web {
                format!("WEB-{}", 500_001 + i)
            } else {
                String::new()
            },
            entry_branch: branches.first().copied(),
            employee_number: Some(if web { 999_999 } else { 1 }),
            relation_number: Some(relation),
            reference: if web {
                format!("Webshop order {}", 500_001 + i)
            } else {
                String::new()
            },
            delivery_method: String::new(),
            lines,
            ..OrderInput::default()
        };
        let outcome = state.create_order(input, None, Vec::new(), at);
        let Some(idx) = state.order_idx(&outcome.order_id) else {
            continue;
        };
        let total = state.orders[idx].total_incl;
        let method = if web { "IDEAL" } else { "PIN" };
        let payment = |amount| {
            vec![PaymentInput {
                method: method.into(),
                amount,
                external_reference: String::new(),
            }]
        };
        match rng.random_range(0..12) {
            // Paid: delivered and invoiced at once.
            0..=2 => {
                state.pay_order(&outcome.order_id, false, payment(total), at + 30);
            }
            // Delivered, not paid yet.
            3..=6 => {
                let _ = state.deliver(idx, at + 30);
            }
            // Paid in advance, not delivered.
            7 => {
                state.pay_order(&outcome.order_id, true, payment(total), at + 30);
            }
            _ => {}
        }
    }
}

/// A top group: number, name, what it holds, and its leaves (number, name).
type TopGroup = (i32, &'static str, GroupKind, &'static [(i32, &'static str)]);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum GroupKind {
    Clothing,
    Books,
    GiftCards,
}

fn reference_data(state: &mut State, branches: usize) {
    let cities = ["Amsterdam", "Utrecht", "Rotterdam", "Den Haag"];
    for b in 0..branches {
        let number = b as i32 + 1;
        let city = cities[b % cities.len()];
        let workplaces = (1..=if b == 0 { 3 } else { 2 })
            .map(|w| (w, format!("Kassa {w}")))
            .collect();
        state.branches.push(Branch {
            number,
            name: format!("Winkel {city}"),
            abbreviation: city.chars().take(3).collect::<String>().to_uppercase(),
            workplaces,
        });
    }
    state.turnover_groups = vec![
        TurnoverGroup {
            number: 10,
            name: "Kleding".into(),
            vat_code: 1,
            account: 8000,
        },
        TurnoverGroup {
            number: 20,
            name: "Boeken".into(),
            vat_code: 2,
            account: 8010,
        },
        TurnoverGroup {
            number: 30,
            name: "Cadeaubonnen".into(),
            vat_code: 3,
            account: 8020,
        },
        TurnoverGroup {
            number: 40,
            name: "Omzet buitenland".into(),
            vat_code: 3,
            account: 8100,
        },
        TurnoverGroup {
            number: 90,
            name: "Verzendkosten".into(),
            vat_code: 1,
            account: 8090,
        },
    ];
    state.payment_methods = [
        ("CONTANT", "Contant", "PAYMENT-METHOD-TYPE-PAYMENT"),
        ("PIN", "Pin", "PAYMENT-METHOD-TYPE-EFT"),
        ("IDEAL", "iDEAL", "PAYMENT-METHOD-TYPE-PAYMENT"),
        ("CREDITCARD", "Creditcard", "PAYMENT-METHOD-TYPE-PAYMENT"),
        ("PAYPAL", "PayPal", "PAYMENT-METHOD-TYPE-PAYMENT"),
        ("OPREKENING", "Op rekening", "PAYMENT-METHOD-TYPE-PAYMENT"),
    ]
    .into_iter()
    .map(|(method, description, kind)| PaymentMethod {
        method: method.into(),
        description: description.into(),
        kind,
    })
    .collect();
    let employees = [
        (999_999, "Beheerder", "beheer@example.nl"),
        (1, "Sanne Visser", "sanne@example.nl"),
        (2, "Daan Bakker", "daan@example.nl"),
        (3, "Lotte Smit", "lotte@example.nl"),
    ];
    for (number, name, email) in employees {
        state.markers.employee += 1;
        state.employees.push(Employee {
            number,
            name: name.into(),
            email: email.into(),
            active: true,
            sync_marker: state.markers.employee,
        });
    }
}

/// The group tree: three top groups with leaves; returns the leaves and what they hold.
fn article_groups(state: &mut State) -> Vec<(i32, GroupKind)> {
    let tree: [TopGroup; 3] = [
        (
            1,
            "Kleding",
            GroupKind::Clothing,
            &[
                (11, "Dames"),
                (12, "Heren"),
                (13, "Kinderen"),
                (14, "Accessoires"),
            ],
        ),
        (
            2,
            "Boeken",
            GroupKind::Books,
            &[(21, "Fictie"), (22, "Non-fictie")],
        ),
        (3, "Cadeaus", GroupKind::GiftCards, &[(31, "Cadeaubonnen")]),
    ];
    let mut leaves = Vec::new();
    for (top_sort, (number, name, kind, children)) in tree.iter().enumerate() {
        state.markers.article_group += 1;
        state.groups.push(ArticleGroup {
            number: *number,
            parent: None,
            name: (*name).into(),
            sort_order: top_sort as i32 + 1,
            sync_marker: state.markers.article_group,
        });
        for (sort, (child, child_name)) in children.iter().enumerate() {
            state.markers.article_group += 1;
            state.groups.push(ArticleGroup {
                number: *child,
                parent: Some(*number),
                name: (*child_name).into(),
                sort_order: sort as i32 + 1,
                sync_marker: state.markers.article_group,
            });
            leaves.push((*child, *kind));
        }
    }
    leaves
}

fn relations(state: &mut State, rng: &mut StdRng, count: usize) {
    for i in 0..count {
        let first = FIRST_NAMES.choose(rng).unwrap_or(&"Jan");
        let last = LAST_NAMES.choose(rng).unwrap_or(&"Jansen");
        let (city, zip) = CITIES.choose(rng).unwrap_or(&("Utrecht", "3511"));
        let street = STREETS.choose(rng).unwrap_or(&"Dorpsstraat");
        let person = format!("{first} {last}");
        let email_name = format!("{first}.{last}").to_lowercase().replace(' ', "");
        let company = rng.random_bool(0.3);
        let mut relation = Relation {
            number: FIRST_RELATION + i as i64,
            ext_id: String::new(),
            active: true,
            address: format!("{street} {}", rng.random_range(1..=180)),
            zipcode: format!(
                "{zip} {}{}",
                (b'A' + rng.random_range(0..26)) as char,
                (b'A' + rng.random_range(0..26)) as char
            ),
            city: (*city).into(),
            country: "NL".into(),
            telephone: format!("06-{:08}", rng.random_range(10_000_000..99_999_999)),
            email: format!("{email_name}{i}@example.nl"),
            default_vat_method: "VAT-METHOD-INCLUSIVE".into(),
            ..Relation::default()
        };
        // What a till knows of its customers besides the address, from the number alone (the
        // random stream stays as it was): birthdays, price groups, loyalty cards, discounts.
        let n = i as i32;
        if i % 3 == 0 {
            relation.birth_date = Some((1 + n % 28, 1 + n % 12, 1960 + n % 40));
            relation.card_numbers = vec![format!("2{:012}", FIRST_RELATION + i as i64)];
        }
        if i % 4 == 1 {
            relation.price_group_number = Some(1 + n % 3);
            relation.mobile = format!("06-{:08}", 20_000_000 + i);
        }
        if i % 5 == 2 {
            relation.discount_percentage = 5 + n % 3 * 5;
        }
        if company {
            relation.credit_limit = Some(250_000);
            relation.website = format!("https://{}.example", email_name.replace('.', "-"));
            relation.contacts = vec![Contact {
                name: person.clone(),
                telephone: relation.telephone.clone(),
                email: relation.email.clone(),
            }];
            let trade = TRADES.choose(rng).unwrap_or(&"Kantoor");
            let name = format!("{trade} {last} B.V.");
            relation.name = name.clone();
            relation.company_name = name;
            relation.contact = person;
            relation.vat_number = format!("NL{:09}B01", rng.random_range(100_000_000..999_999_999));
            relation.commerce_number = format!("{:08}", rng.random_range(10_000_000..99_999_999));
        } else {
            relation.name = person;
        }
        let _ = state.insert_relation(relation, GENERATED_AT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::DeliveryState;

    #[test]
    fn ean13_check_digits_are_valid() {
        // 4006381333931 is the textbook valid EAN-13.
        assert_eq!(ean13_check_digit(400_638_133_393), 1);
        for serial in [0, 1, 99, 1_000_123] {
            let code = ean13(serial);
            assert_eq!(code.len(), 13);
            let digits: Vec<u64> = code.bytes().map(|b| u64::from(b - b'0')).collect();
            let sum: u64 = digits
                .iter()
                .enumerate()
                .map(|(i, d)| if i % 2 == 1 { d * 3 } else { *d })
                .sum();
            assert_eq!(sum % 10, 0, "{code}");
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_shop() {
        let shape = Shape {
            seed: 7,
            products: 200,
            variant_share: 0.4,
            relations: 30,
            branches: 2,
            orders: 60,
        };
        let mut a = State::new(0, 1);
        let mut b = State::new(0, 1);
        populate(&mut a, &shape);
        populate(&mut b, &shape);
        assert_eq!(a.articles.len(), b.articles.len());
        assert!(a.articles.len() > 200, "families add articles");
        let descriptions = |s: &State| {
            s.articles
                .iter()
                .map(|x| (x.number, x.description.clone(), x.price_incl))
                .collect::<Vec<_>>()
        };
        assert_eq!(descriptions(&a), descriptions(&b));
        assert_eq!(a.relations, b.relations);
        assert!(a.relations.iter().any(Relation::is_company));
        assert!(a.relations.iter().any(|r| !r.is_company()));
        assert!(a.employees.iter().any(|e| e.number == 999_999));
        let families = a.products.iter().filter(|p| p.articles.len() > 1).count();
        assert!(
            families > 40 && families < 120,
            "{families} families of 200"
        );
        assert_eq!(a.orders.len(), 60);
        assert_eq!(a.orders, b.orders);
        assert_eq!(a.invoices, b.invoices);
        let delivered = a
            .orders
            .iter()
            .filter(|o| o.delivery_state == DeliveryState::Complete)
            .count();
        let invoiced = a
            .orders
            .iter()
            .filter(|o| !o.invoice_ids.is_empty())
            .count();
        let open = a
            .orders
            .iter()
            .filter(|o| o.delivery_state == DeliveryState::Nothing && !o.fully_paid)
            .count();
        assert!(
            delivered > 10 && invoiced > 5 && open > 5,
            "{delivered} delivered, {invoiced} invoiced, {open} open"
        );
        assert!(invoiced <= delivered, "an invoiced order was delivered");
        assert!(a.orders.iter().any(|o| !o.ext_id.is_empty()));
        assert!(a.orders.iter().any(|o| o.ext_id.is_empty()));
        assert!(
            a.orders
                .iter()
                .all(|o| o.total_incl > 0 && !o.lines.is_empty())
        );
    }
}
