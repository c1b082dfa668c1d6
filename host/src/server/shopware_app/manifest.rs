//! The app's `manifest.xml` as Shopware reads it (`src/Core/Framework/App/Manifest/Schema/
//! manifest-1.0.xsd` in 6.4, `manifest-2.0.xsd` since 6.5): only elements both schemas
//! know, so one file installs in every version the Shopware connector serves.

use super::{EVENT, REGISTER, path};

/// What the Shopware connector does in the shop, as the app's ACL role must allow it
/// (`AclCriteriaValidator`: read on every entity a search or its associations touch;
/// `AclWriteValidator`: create / update / delete per entity a sync writes, translations under
/// their parent). Shopware adds `read` to each of `create`, `update` and `delete` itself.
pub const PERMISSIONS: [(&str, &[&str]); 4] = [
    (
        "read",
        &[
            // products, stock and their reference data
            "product",
            "product_visibility",
            "product_configurator_setting",
            "product_category",
            "product_property",
            "product_option",
            "tax",
            "currency",
            "language",
            "sales_channel",
            "category",
            "property_group",
            "property_group_option",
            // orders with their customer, addresses, lines, deliveries and payments
            "order",
            "order_customer",
            "order_address",
            "order_line_item",
            "order_delivery",
            "order_transaction",
            "state_machine",
            "state_machine_state",
            "state_machine_transition",
            "country",
            "payment_method",
            "shipping_method",
            "customer",
            "customer_address",
        ],
    ),
    (
        "create",
        &[
            "product",
            "product_visibility",
            "product_configurator_setting",
            "product_category",
            "product_property",
            "product_option",
            "tax",
            "category",
            "property_group",
            "property_group_option",
        ],
    ),
    (
        "update",
        &[
            "product",
            "product_visibility",
            "product_configurator_setting",
            "category",
            "property_group",
            "property_group_option",
            "order",
            "order_transaction",
            "order_delivery",
        ],
    ),
    (
        "delete",
        &[
            "product_category",
            "product_property",
            "product_option",
            "product_configurator_setting",
        ],
    ),
];

/// The lifecycle event on which koppel forgets the shop's secret and credentials.
pub const APP_DELETED: &str = "app.deleted";

/// What a manifest is made of.
#[derive(Clone)]
pub struct ManifestInput<'a> {
    /// The technical name (`<meta><name>`); Shopware wants the app's folder to carry it.
    pub name: &'a str,
    pub version: &'a str,
    /// koppel's address as the shop reaches it, without a trailing `/`.
    pub base_url: &'a str,
    pub tenant: &'a str,
    pub connection: &'a str,
    /// The app secret (`<setup><secret>`): the shop signs its registration with it.
    pub app_secret: &'a str,
    /// The events that start flows.
    pub events: &'a [String],
}

impl std::fmt::Debug for ManifestInput<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManifestInput")
            .field("name", &self.name)
            .field("base_url", &self.base_url)
            .field("tenant", &self.tenant)
            .field("connection", &self.connection)
            .field("app_secret", &"<set>")
            .field("events", &self.events)
            .finish()
    }
}

/// Text for XML content and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// A webhook's name from its event: `checkout.order.placed` → `koppelCheckoutOrderPlaced`.
fn webhook_name(event: &str) -> String {
    let mut name = String::from("koppel");
    for word in event.split(|c: char| !c.is_ascii_alphanumeric()) {
        let mut chars = word.chars();
        if let Some(first) = chars.next() {
            name.push(first.to_ascii_uppercase());
            name.extend(chars);
        }
    }
    name
}

/// The manifest. Contains the app secret: keep the file private.
pub fn manifest_xml(input: &ManifestInput<'_>) -> String {
    let url = |leaf: &str| {
        escape(&format!(
            "{}{}",
            input.base_url.trim_end_matches('/'),
            path(input.tenant, input.connection, leaf)
        ))
    };
    let mut xml = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <manifest xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" \
         xsi:noNamespaceSchemaLocation=\"https://raw.githubusercontent.com/shopware/shopware/trunk/src/Core/Framework/App/Manifest/Schema/manifest-2.0.xsd\">\n",
    );
    xml.push_str("    <meta>\n");
    xml.push_str(&format!("        <name>{}</name>\n", escape(input.name)));
    xml.push_str("        <label>koppel</label>\n");
    xml.push_str("        <label lang=\"de-DE\">koppel</label>\n");
    xml.push_str(&format!(
        "        <description>Keeps the shop in step with the till: products and stock in, orders out (koppel tenant {}, connection {}).</description>\n",
        escape(input.tenant),
        escape(input.connection)
    ));
    xml.push_str("        <author>koppel</author>\n");
    xml.push_str("        <copyright>(c) the koppel authors</copyright>\n");
    xml.push_str(&format!(
        "        <version>{}</version>\n",
        escape(input.version)
    ));
    xml.push_str("        <license>Apache-2.0</license>\n");
    xml.push_str("    </meta>\n");
    xml.push_str("    <setup>\n");
    xml.push_str(&format!(
        "        <registrationUrl>{}</registrationUrl>\n",
        url(REGISTER)
    ));
    xml.push_str(&format!(
        "        <secret>{}</secret>\n",
        escape(input.app_secret)
    ));
    xml.push_str("    </setup>\n");
    xml.push_str("    <permissions>\n");
    for (privilege, entities) in PERMISSIONS {
        for entity in entities {
            xml.push_str(&format!("        <{privilege}>{entity}</{privilege}>\n"));
        }
    }
    xml.push_str("    </permissions>\n");
    xml.push_str("    <webhooks>\n");
    let mut events: Vec<&str> = input.events.iter().map(String::as_str).collect();
    events.push(APP_DELETED);
    events.dedup();
    for event in events {
        xml.push_str(&format!(
            "        <webhook name=\"{}\" url=\"{}\" event=\"{}\"/>\n",
            escape(&webhook_name(event)),
            url(EVENT),
            escape(event)
        ));
    }
    xml.push_str("    </webhooks>\n");
    xml.push_str("</manifest>\n");
    xml
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_escapes() {
        assert_eq!(
            webhook_name("state_enter.order_transaction.state.paid"),
            "koppelStateEnterOrderTransactionStatePaid"
        );
        assert_eq!(escape("a&b<\"c\">"), "a&amp;b&lt;&quot;c&quot;&gt;");
    }
}
