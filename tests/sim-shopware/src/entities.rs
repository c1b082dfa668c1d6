//! The entities the simulator knows: their names, associations (how the foreign keys run),
//! translated fields, defaults and indexed fields. Field lists and types come from the
//! selected version's OpenAPI schema; this table adds what the schema does not say.

/// How an association is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// This entity holds the foreign key (`taxId` for `tax`).
    ManyToOne { fk: &'static str },
    /// The target holds a foreign key to this entity and there is at most one
    /// (`order.orderCustomer` through `order_customer.orderId`).
    OneToOne { fk: &'static str },
    /// The target holds a foreign key to this entity (`product_visibility.productId`).
    OneToMany { fk: &'static str },
    /// A mapping entity links both (`product_category`: `productId`, `categoryId`).
    ManyToMany {
        mapping: &'static str,
        local: &'static str,
        remote: &'static str,
    },
}

#[derive(Clone, Copy, Debug)]
pub struct Assoc {
    pub name: &'static str,
    pub target: &'static str,
    pub kind: Kind,
}

/// What happens to rows that point at a deleted row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnDelete {
    Cascade,
    Restrict,
    SetNull,
}

#[derive(Debug)]
pub struct EntityDef {
    /// snake_case entity name (`product_visibility`).
    pub name: &'static str,
    /// A mapping entity (`product_category`): no id of its own, keyed by both foreign keys.
    pub mapping: Option<(&'static str, &'static str)>,
    pub versioned: bool,
    pub translated: &'static [&'static str],
    pub assocs: &'static [Assoc],
    /// Values the DAL fills on create when the payload leaves them out (JSON text).
    pub defaults: &'static [(&'static str, &'static str)],
    /// Fields with a secondary index (foreign keys and lookup keys).
    pub indexed: &'static [&'static str],
}

impl EntityDef {
    pub fn assoc(&self, name: &str) -> Option<&Assoc> {
        self.assocs.iter().find(|a| a.name == name)
    }

    /// The OpenAPI component name: `product_visibility` → `ProductVisibility`.
    pub fn schema_name(&self) -> String {
        pascal(self.name)
    }

    pub fn is_translated(&self, field: &str) -> bool {
        self.translated.contains(&field)
    }
}

pub fn pascal(snake: &str) -> String {
    snake
        .split('_')
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

/// `product_visibility` → `productVisibility`.
pub fn camel(snake: &str) -> String {
    let p = pascal(snake);
    let mut chars = p.chars();
    match chars.next() {
        Some(first) => first.to_ascii_lowercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

const fn m2o(name: &'static str, target: &'static str, fk: &'static str) -> Assoc {
    Assoc {
        name,
        target,
        kind: Kind::ManyToOne { fk },
    }
}

const fn o2m(name: &'static str, target: &'static str, fk: &'static str) -> Assoc {
    Assoc {
        name,
        target,
        kind: Kind::OneToMany { fk },
    }
}

const fn o2o(name: &'static str, target: &'static str, fk: &'static str) -> Assoc {
    Assoc {
        name,
        target,
        kind: Kind::OneToOne { fk },
    }
}

const fn m2m(
    name: &'static str,
    target: &'static str,
    mapping: &'static str,
    local: &'static str,
    remote: &'static str,
) -> Assoc {
    Assoc {
        name,
        target,
        kind: Kind::ManyToMany {
            mapping,
            local,
            remote,
        },
    }
}

const fn plain(name: &'static str, translated: &'static [&'static str]) -> EntityDef {
    EntityDef {
        name,
        mapping: None,
        versioned: false,
        translated,
        assocs: &[],
        defaults: &[],
        indexed: &[],
    }
}

const fn mapping(name: &'static str, local: &'static str, remote: &'static str) -> EntityDef {
    EntityDef {
        name,
        mapping: Some((local, remote)),
        versioned: false,
        translated: &[],
        assocs: &[],
        defaults: &[],
        indexed: &[],
    }
}

const PRODUCT_TRANSLATED: &[&str] = &[
    "name",
    "description",
    "metaTitle",
    "metaDescription",
    "keywords",
    "packUnit",
    "packUnitPlural",
    "customFields",
    "customSearchKeywords",
    "slotConfig",
];

/// Every entity the simulator serves.
pub static ENTITIES: &[EntityDef] = &[
    EntityDef {
        name: "product",
        mapping: None,
        versioned: true,
        translated: PRODUCT_TRANSLATED,
        assocs: &[
            m2o("parent", "product", "parentId"),
            o2m("children", "product", "parentId"),
            m2o("tax", "tax", "taxId"),
            m2o("manufacturer", "product_manufacturer", "manufacturerId"),
            m2o("unit", "unit", "unitId"),
            m2o("deliveryTime", "delivery_time", "deliveryTimeId"),
            o2m("visibilities", "product_visibility", "productId"),
            o2m(
                "configuratorSettings",
                "product_configurator_setting",
                "productId",
            ),
            o2m("prices", "product_price", "productId"),
            m2m(
                "categories",
                "category",
                "product_category",
                "productId",
                "categoryId",
            ),
            m2m(
                "properties",
                "property_group_option",
                "product_property",
                "productId",
                "optionId",
            ),
            m2m(
                "options",
                "property_group_option",
                "product_option",
                "productId",
                "optionId",
            ),
            m2m("tags", "tag", "product_tag", "productId", "tagId"),
        ],
        defaults: &[],
        indexed: &["productNumber", "parentId", "ean"],
    },
    EntityDef {
        name: "product_visibility",
        mapping: None,
        versioned: false,
        translated: &[],
        assocs: &[
            m2o("product", "product", "productId"),
            m2o("salesChannel", "sales_channel", "salesChannelId"),
        ],
        defaults: &[],
        indexed: &["productId"],
    },
    EntityDef {
        name: "product_configurator_setting",
        mapping: None,
        versioned: true,
        translated: &[],
        assocs: &[
            m2o("product", "product", "productId"),
            m2o("option", "property_group_option", "optionId"),
        ],
        defaults: &[],
        indexed: &["productId"],
    },
    EntityDef {
        name: "product_price",
        mapping: None,
        versioned: true,
        translated: &[],
        assocs: &[
            m2o("product", "product", "productId"),
            m2o("rule", "rule", "ruleId"),
        ],
        defaults: &[],
        indexed: &["productId"],
    },
    mapping("product_category", "productId", "categoryId"),
    mapping("product_property", "productId", "optionId"),
    mapping("product_option", "productId", "optionId"),
    mapping("product_tag", "productId", "tagId"),
    mapping("order_tag", "orderId", "tagId"),
    EntityDef {
        name: "product_manufacturer",
        versioned: true,
        ..plain(
            "product_manufacturer",
            &["name", "description", "customFields"],
        )
    },
    plain("unit", &["shortCode", "name", "customFields"]),
    plain("tag", &[]),
    plain("delivery_time", &["name", "customFields"]),
    plain("rule", &[]),
    EntityDef {
        name: "property_group",
        mapping: None,
        versioned: false,
        translated: &["name", "description", "position", "customFields"],
        assocs: &[o2m("options", "property_group_option", "groupId")],
        defaults: &[
            ("displayType", "\"text\""),
            ("sortingType", "\"alphanumeric\""),
        ],
        indexed: &[],
    },
    EntityDef {
        name: "property_group_option",
        mapping: None,
        versioned: false,
        translated: &["name", "position", "customFields"],
        assocs: &[
            m2o("group", "property_group", "groupId"),
            m2m(
                "productOptions",
                "product",
                "product_option",
                "optionId",
                "productId",
            ),
            m2m(
                "productProperties",
                "product",
                "product_property",
                "optionId",
                "productId",
            ),
        ],
        defaults: &[],
        indexed: &["groupId"],
    },
    EntityDef {
        name: "category",
        mapping: None,
        versioned: true,
        translated: &[
            "name",
            "breadcrumb",
            "customFields",
            "description",
            "metaTitle",
        ],
        assocs: &[
            m2o("parent", "category", "parentId"),
            o2m("children", "category", "parentId"),
            m2m(
                "products",
                "product",
                "product_category",
                "categoryId",
                "productId",
            ),
        ],
        defaults: &[
            ("displayNestedProducts", "true"),
            ("type", "\"page\""),
            ("productAssignmentType", "\"product\""),
            ("active", "true"),
            ("visible", "true"),
        ],
        indexed: &["parentId"],
    },
    EntityDef {
        name: "tax",
        defaults: &[("position", "0")],
        ..plain("tax", &[])
    },
    plain("currency", &["shortName", "name", "customFields"]),
    EntityDef {
        name: "country",
        mapping: None,
        versioned: false,
        translated: &["name", "addressFormat", "customFields"],
        assocs: &[o2m("states", "country_state", "countryId")],
        defaults: &[(
            "addressFormat",
            // Every version's schema types it `object`, so lines are keyed by position.
            r#"{"0":[{"type":"plain","value":"{{company}}"}],"1":[{"type":"plain","value":"{{firstName}} {{lastName}}"}],"2":[{"type":"plain","value":"{{street}}"}],"3":[{"type":"plain","value":"{{zipcode}} {{city}}"}],"4":[{"type":"plain","value":"{{country}}"}]}"#,
        )],
        indexed: &["iso"],
    },
    EntityDef {
        name: "country_state",
        mapping: None,
        versioned: false,
        translated: &["name", "customFields"],
        assocs: &[m2o("country", "country", "countryId")],
        defaults: &[],
        indexed: &["countryId"],
    },
    EntityDef {
        name: "language",
        mapping: None,
        versioned: false,
        translated: &[],
        assocs: &[
            m2o("parent", "language", "parentId"),
            m2o("locale", "locale", "localeId"),
            m2o("translationCode", "locale", "translationCodeId"),
        ],
        defaults: &[],
        indexed: &[],
    },
    plain("locale", &["name", "territory", "customFields"]),
    EntityDef {
        name: "sales_channel",
        mapping: None,
        versioned: false,
        translated: &["name", "homeName", "customFields"],
        assocs: &[
            m2o("type", "sales_channel_type", "typeId"),
            m2o("currency", "currency", "currencyId"),
            m2o("language", "language", "languageId"),
            m2o("paymentMethod", "payment_method", "paymentMethodId"),
            m2o("shippingMethod", "shipping_method", "shippingMethodId"),
            m2o("country", "country", "countryId"),
            m2o("customerGroup", "customer_group", "customerGroupId"),
            m2o("navigationCategory", "category", "navigationCategoryId"),
        ],
        defaults: &[("homeEnabled", "true"), ("active", "true")],
        indexed: &[],
    },
    plain(
        "sales_channel_type",
        &["name", "manufacturer", "description", "customFields"],
    ),
    plain("customer_group", &["name", "customFields"]),
    plain("salutation", &["displayName", "letterName", "customFields"]),
    EntityDef {
        name: "payment_method",
        defaults: &[("active", "true")],
        indexed: &["technicalName"],
        ..plain(
            "payment_method",
            &["name", "distinguishableName", "description", "customFields"],
        )
    },
    EntityDef {
        name: "shipping_method",
        mapping: None,
        versioned: false,
        translated: &["name", "description", "trackingUrl", "customFields"],
        assocs: &[
            m2o("deliveryTime", "delivery_time", "deliveryTimeId"),
            m2o("availabilityRule", "rule", "availabilityRuleId"),
        ],
        defaults: &[("active", "true"), ("taxType", "\"auto\"")],
        indexed: &["technicalName"],
    },
    EntityDef {
        name: "customer",
        mapping: None,
        versioned: false,
        translated: &[],
        assocs: &[
            m2o("group", "customer_group", "groupId"),
            m2o("salesChannel", "sales_channel", "salesChannelId"),
            m2o("language", "language", "languageId"),
            m2o(
                "defaultPaymentMethod",
                "payment_method",
                "defaultPaymentMethodId",
            ),
            m2o(
                "defaultBillingAddress",
                "customer_address",
                "defaultBillingAddressId",
            ),
            m2o(
                "defaultShippingAddress",
                "customer_address",
                "defaultShippingAddressId",
            ),
            m2o("salutation", "salutation", "salutationId"),
            o2m("addresses", "customer_address", "customerId"),
        ],
        defaults: &[("active", "true"), ("guest", "false")],
        indexed: &["email", "customerNumber"],
    },
    EntityDef {
        name: "customer_address",
        mapping: None,
        versioned: false,
        translated: &[],
        assocs: &[
            m2o("customer", "customer", "customerId"),
            m2o("country", "country", "countryId"),
            m2o("salutation", "salutation", "salutationId"),
        ],
        defaults: &[],
        indexed: &["customerId"],
    },
    EntityDef {
        name: "order",
        mapping: None,
        versioned: true,
        translated: &[],
        assocs: &[
            m2o("currency", "currency", "currencyId"),
            m2o("language", "language", "languageId"),
            m2o("salesChannel", "sales_channel", "salesChannelId"),
            m2o("stateMachineState", "state_machine_state", "stateId"),
            m2o("billingAddress", "order_address", "billingAddressId"),
            o2o("orderCustomer", "order_customer", "orderId"),
            o2m("addresses", "order_address", "orderId"),
            o2m("deliveries", "order_delivery", "orderId"),
            o2m("lineItems", "order_line_item", "orderId"),
            o2m("transactions", "order_transaction", "orderId"),
            m2m("tags", "tag", "order_tag", "orderId", "tagId"),
        ],
        defaults: &[],
        indexed: &["orderNumber"],
    },
    EntityDef {
        name: "order_customer",
        mapping: None,
        versioned: true,
        translated: &[],
        assocs: &[
            m2o("order", "order", "orderId"),
            m2o("customer", "customer", "customerId"),
            m2o("salutation", "salutation", "salutationId"),
        ],
        defaults: &[],
        indexed: &["orderId", "email"],
    },
    EntityDef {
        name: "order_address",
        mapping: None,
        versioned: true,
        translated: &[],
        assocs: &[
            m2o("order", "order", "orderId"),
            m2o("country", "country", "countryId"),
            m2o("salutation", "salutation", "salutationId"),
        ],
        defaults: &[],
        indexed: &["orderId"],
    },
    EntityDef {
        name: "order_line_item",
        mapping: None,
        versioned: true,
        translated: &[],
        assocs: &[
            m2o("order", "order", "orderId"),
            m2o("product", "product", "productId"),
            m2o("parent", "order_line_item", "parentId"),
            o2m("children", "order_line_item", "parentId"),
        ],
        defaults: &[("position", "1"), ("states", "[]")],
        indexed: &["orderId", "productId"],
    },
    EntityDef {
        name: "order_delivery",
        mapping: None,
        versioned: true,
        translated: &[],
        assocs: &[
            m2o("order", "order", "orderId"),
            m2o(
                "shippingOrderAddress",
                "order_address",
                "shippingOrderAddressId",
            ),
            m2o("shippingMethod", "shipping_method", "shippingMethodId"),
            m2o("stateMachineState", "state_machine_state", "stateId"),
        ],
        defaults: &[("trackingCodes", "[]")],
        indexed: &["orderId"],
    },
    EntityDef {
        name: "order_transaction",
        mapping: None,
        versioned: true,
        translated: &[],
        assocs: &[
            m2o("order", "order", "orderId"),
            m2o("paymentMethod", "payment_method", "paymentMethodId"),
            m2o("stateMachineState", "state_machine_state", "stateId"),
        ],
        defaults: &[],
        indexed: &["orderId"],
    },
    EntityDef {
        name: "state_machine",
        mapping: None,
        versioned: false,
        translated: &["name", "customFields"],
        assocs: &[
            o2m("states", "state_machine_state", "stateMachineId"),
            o2m("transitions", "state_machine_transition", "stateMachineId"),
        ],
        defaults: &[],
        indexed: &["technicalName"],
    },
    EntityDef {
        name: "state_machine_state",
        mapping: None,
        versioned: false,
        translated: &["name", "customFields"],
        assocs: &[m2o("stateMachine", "state_machine", "stateMachineId")],
        defaults: &[],
        indexed: &["stateMachineId"],
    },
    EntityDef {
        name: "state_machine_transition",
        mapping: None,
        versioned: false,
        translated: &[],
        assocs: &[
            m2o("stateMachine", "state_machine", "stateMachineId"),
            m2o(
                "fromStateMachineState",
                "state_machine_state",
                "fromStateId",
            ),
            m2o("toStateMachineState", "state_machine_state", "toStateId"),
        ],
        defaults: &[],
        indexed: &["stateMachineId"],
    },
    EntityDef {
        name: "state_machine_history",
        mapping: None,
        versioned: false,
        translated: &[],
        assocs: &[
            m2o("stateMachine", "state_machine", "stateMachineId"),
            m2o(
                "fromStateMachineState",
                "state_machine_state",
                "fromStateId",
            ),
            m2o("toStateMachineState", "state_machine_state", "toStateId"),
        ],
        defaults: &[],
        indexed: &["referencedId"],
    },
];

/// The index of an entity in [`ENTITIES`] by its snake_case name.
pub fn index_of(name: &str) -> Option<usize> {
    ENTITIES.iter().position(|e| e.name == name)
}

pub fn def(index: usize) -> &'static EntityDef {
    &ENTITIES[index]
}

/// The entity a URL segment names (`product-visibility` → `product_visibility`).
pub fn from_segment(segment: &str) -> Option<usize> {
    index_of(&segment.replace('-', "_"))
}

/// How deleting a row of `target` treats rows of `holder` pointing at it through `fk`
/// (the DAL's CASCADE / RESTRICT / SET NULL flags on the core definitions).
pub fn on_delete(holder: &str, fk: &str) -> OnDelete {
    if index_of(holder).is_some_and(|i| def(i).mapping.is_some()) {
        return OnDelete::Cascade;
    }
    match (holder, fk) {
        ("customer", "groupId")
        | ("order_address", "countryId")
        | ("customer_address", "countryId") => OnDelete::Restrict,
        ("order_line_item", "productId")
        | ("order_delivery", "shippingOrderAddressId")
        | ("order", "billingAddressId") => OnDelete::SetNull,
        (_, "parentId")
        | (_, "productId")
        | (_, "orderId")
        | (_, "customerId")
        | (_, "groupId")
        | (_, "countryId")
        | (_, "stateMachineId") => OnDelete::Cascade,
        (_, "manufacturerId") | (_, "unitId") | (_, "deliveryTimeId") => OnDelete::SetNull,
        _ => OnDelete::Restrict,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_convert() {
        assert_eq!(pascal("product_visibility"), "ProductVisibility");
        assert_eq!(camel("order_line_item"), "orderLineItem");
        assert_eq!(
            from_segment("order-line-item").map(|i| def(i).name),
            Some("order_line_item")
        );
    }

    #[test]
    fn every_association_points_at_a_known_entity() {
        for entity in ENTITIES {
            for assoc in entity.assocs {
                assert!(
                    index_of(assoc.target).is_some(),
                    "{}.{}",
                    entity.name,
                    assoc.name
                );
                if let Kind::ManyToMany { mapping, .. } = assoc.kind {
                    assert!(index_of(mapping).is_some(), "{mapping}");
                }
            }
        }
    }
}
