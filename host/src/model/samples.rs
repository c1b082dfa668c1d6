//! One record of every kind, with every field set (and some left empty), for the golden
//! files and the field-name tests.

use super::*;

fn dec(units: i64, scale: u8) -> Decimal {
    Decimal { units, scale }
}

fn extra() -> Vec<NamedValue> {
    vec![
        NamedValue {
            name: "null".into(),
            value: Value::Null,
        },
        NamedValue {
            name: "text".into(),
            value: Value::Text("Ünïcode \"quoted\"".into()),
        },
        NamedValue {
            name: "integer".into(),
            value: Value::Integer(-42),
        },
        NamedValue {
            name: "number".into(),
            value: Value::Number(dec(-530, 3)),
        },
        NamedValue {
            name: "boolean".into(),
            value: Value::Boolean(true),
        },
        NamedValue {
            name: "json".into(),
            value: Value::Json(r#"{"a":[1,2]}"#.into()),
        },
    ]
}

fn price() -> Price {
    Price {
        currency: "EUR".into(),
        net: 2066,
        gross: 2500,
        tax_rate: dec(21, 0),
    }
}

fn address() -> Address {
    Address {
        company: Some("Acme B.V.".into()),
        first_name: Some("Jan".into()),
        last_name: Some("de Vries".into()),
        street: "Dorpsstraat".into(),
        house_number: Some("1a".into()),
        additional: None,
        postal_code: "1234 AB".into(),
        city: "Utrecht".into(),
        country: "NL".into(),
        phone: None,
    }
}

fn customer() -> Customer {
    Customer {
        key: "jan@example.com".into(),
        email: "jan@example.com".into(),
        company_name: Some("Acme B.V.".into()),
        first_name: Some("Jan".into()),
        last_name: Some("de Vries".into()),
        phone: Some("+31 30 123 4567".into()),
        vat_id: None,
        billing_address: Some(address()),
        shipping_address: None,
        external_ids: vec![ExternalId {
            system: "shopware".into(),
            id: "0a1b".into(),
        }],
        extra: vec![],
    }
}

pub fn all() -> Vec<Record> {
    vec![
        Record::Product(Product {
            key: "P1000".into(),
            name: "Shirt".into(),
            description: Some("<p>Cotton</p>".into()),
            short_description: None,
            ean: Some("8712345000011".into()),
            prices: vec![price()],
            categories: vec![vec!["Clothing".into(), "Shirts".into()]],
            properties: vec![Property {
                group: "Material".into(),
                option: "Cotton".into(),
            }],
            variants: vec![Variant {
                key: "1000001".into(),
                name: Some("Shirt red M".into()),
                ean: None,
                options: vec![
                    Property {
                        group: "Colour".into(),
                        option: "red".into(),
                    },
                    Property {
                        group: "Size".into(),
                        option: "M".into(),
                    },
                ],
                prices: vec![price()],
                active: false,
                extra: vec![],
            }],
            active: true,
            extra: extra(),
        }),
        Record::Stock(StockLevel {
            key: "1000001".into(),
            on_hand: dec(12, 0),
            reserved: dec(2500, 3),
            available: dec(9500, 3),
            location: Some("1".into()),
            extra: vec![],
        }),
        Record::Customer(customer()),
        Record::Order(Order {
            key: "10001".into(),
            number: "10001".into(),
            external_id: Some("0a1b2c".into()),
            placed_at: "2026-12-07T10:00:00Z".into(),
            state: OrderState::InProgress,
            payment_state: PaymentState::PartiallyPaid,
            delivery_state: DeliveryState::PartiallyShipped,
            customer: customer(),
            billing_address: address(),
            shipping_address: Some(address()),
            lines: vec![OrderLine {
                sku: "1000001".into(),
                name: "Shirt red M".into(),
                quantity: dec(2, 0),
                unit_price: Amount {
                    net: 2066,
                    gross: 2500,
                },
                tax_rate: dec(21, 0),
                total: Amount {
                    net: 4132,
                    gross: 5000,
                },
                extra: vec![],
            }],
            shipping: Some(Shipping {
                method: "DHL".into(),
                cost: Amount {
                    net: 413,
                    gross: 500,
                },
                tax_rate: dec(21, 0),
            }),
            payment_method: Some("iDEAL".into()),
            totals: Amount {
                net: 4545,
                gross: 5500,
            },
            currency: "EUR".into(),
            country: "NL".into(),
            extra: vec![],
        }),
        Record::OrderStatus(OrderStatus {
            key: "10001".into(),
            state: OrderState::Completed,
            payment_state: Some(PaymentState::Paid),
            delivery_state: None,
            tracking_codes: vec!["3SABC123".into()],
            extra: vec![],
        }),
        Record::Reference(ReferenceEntry {
            key: "1".into(),
            name: "21%".into(),
            fields: extra(),
        }),
    ]
}
