//! One configured connection: the typed config, the SOAP client, and the reference data a
//! session reads once (the article group tree, the VAT table), kept for the instance's life.

use std::collections::HashMap;
use std::rc::Rc;

use koppel_sdk::{ConnectorError, Decimal, Result};

use crate::config::MplusConfig;
use crate::ops;
use crate::soap::{Client, Transport};
use crate::wire::{ArticleGroup, GetArticleGroupsResponse, VatGroup, VatGroupListResponse};

/// The most items one marker-paged call asks for (the vendor documents 1000 for relations).
pub const MAX_PAGE: u32 = 1000;

/// What the product mapping needs besides the products.
#[derive(Debug, Default)]
pub struct Catalogue {
    /// Article group number → names from the top group down.
    pub paths: HashMap<i32, Vec<String>>,
    /// VAT code → rate in percent, for the configured branch.
    pub vat: HashMap<i32, Decimal>,
    pub currency: String,
}

pub struct Mplus<T> {
    pub config: MplusConfig,
    pub client: Client<T>,
    catalogue: Option<Rc<Catalogue>>,
    vat_groups: Option<Rc<Vec<VatGroup>>>,
}

impl<T: Transport> Mplus<T> {
    pub fn new(config: MplusConfig, transport: T) -> Self {
        Mplus {
            config,
            client: Client::new(transport),
            catalogue: None,
            vat_groups: None,
        }
    }

    /// `getVatGroupList`, once per instance.
    pub fn vat_groups(&mut self) -> Result<Rc<Vec<VatGroup>>> {
        if let Some(groups) = &self.vat_groups {
            return Ok(groups.clone());
        }
        let answer: VatGroupListResponse = self.client.call(ops::get_vat_group_list(), true)?;
        let groups = Rc::new(answer.vat_group);
        self.vat_groups = Some(groups.clone());
        Ok(groups)
    }

    /// The VAT table of the configured branch (entries without a branch apply to all).
    pub fn vat_table(&mut self) -> Result<HashMap<i32, Decimal>> {
        let branch = self.config.branch;
        let groups = self.vat_groups()?;
        let mut table = HashMap::new();
        for g in groups.iter().filter(|g| g.branch_number.is_none()) {
            table.insert(g.vat_code, vat_rate(g.vat_percentage));
        }
        for g in groups.iter().filter(|g| g.branch_number == Some(branch)) {
            table.insert(g.vat_code, vat_rate(g.vat_percentage));
        }
        Ok(table)
    }

    /// The article group paths and the VAT table, once per instance.
    pub fn catalogue(&mut self) -> Result<Rc<Catalogue>> {
        if let Some(c) = &self.catalogue {
            return Ok(c.clone());
        }
        let groups: GetArticleGroupsResponse = self.client.call(ops::get_article_groups(), true)?;
        let mut paths = HashMap::new();
        for top in &groups.article_group_list.article_groups {
            collect_paths(top, &mut Vec::new(), &mut paths, 0);
        }
        let catalogue = Rc::new(Catalogue {
            paths,
            vat: self.vat_table()?,
            currency: self.config.currency.clone(),
        });
        self.catalogue = Some(catalogue.clone());
        Ok(catalogue)
    }
}

fn collect_paths(
    group: &ArticleGroup,
    parents: &mut Vec<String>,
    paths: &mut HashMap<i32, Vec<String>>,
    depth: usize,
) {
    if group.is_deleted == Some(true) || depth > 32 {
        return;
    }
    parents.push(group.name.trim().to_owned());
    paths.insert(group.group_number, parents.clone());
    for child in &group.sub_group_list.article_groups {
        collect_paths(child, parents, paths, depth + 1);
    }
    parents.pop();
}

/// `vatPercentage` is an integer whose scale no source documents: whole percent is what every
/// example shows; a value above 100 can only be hundredths.
pub fn vat_rate(percentage: i64) -> Decimal {
    if percentage > 100 {
        Decimal::new(percentage, 2).normalize()
    } else {
        Decimal::integer(percentage)
    }
}

/// A marker state: the next lower bound, as a decimal number.
pub fn marker_state(stream: &str, state: Option<&str>) -> Result<i64> {
    match state {
        None => Ok(0),
        Some(text) => text.trim().parse::<i64>().map_err(|_| {
            ConnectorError::internal(format!(
                "the `{stream}` state {text:?} is not a sync marker; reset the stream's state"
            ))
        }),
    }
}

/// The page size to ask for: the host's limit, capped.
pub fn page_size(limit: u32) -> u32 {
    limit.clamp(1, MAX_PAGE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vat_percentages_are_whole_unless_they_cannot_be() {
        assert_eq!(vat_rate(21), Decimal::integer(21));
        assert_eq!(vat_rate(2100), Decimal::integer(21));
        assert_eq!(vat_rate(550), Decimal::new(55, 1));
    }

    #[test]
    fn group_paths_run_from_the_top() {
        let xml = r#"<E:Envelope xmlns:E="http://schemas.xmlsoap.org/soap/envelope/" xmlns:ns="urn:mplusqapi"><E:Body><ns:GetArticleGroupsResponse><ns:articleGroupList>
            <ns:articleGroups><ns:groupNumber>1</ns:groupNumber><ns:name>Kleding</ns:name><ns:text>x</ns:text>
              <ns:subGroupList><ns:articleGroups><ns:groupNumber>11</ns:groupNumber><ns:name>Dames</ns:name><ns:text/><ns:subGroupList/><ns:sortOrder>1</ns:sortOrder></ns:articleGroups></ns:subGroupList>
              <ns:sortOrder>1</ns:sortOrder></ns:articleGroups>
            <ns:articleGroups><ns:groupNumber>9</ns:groupNumber><ns:name>Oud</ns:name><ns:text/><ns:subGroupList/><ns:sortOrder>2</ns:sortOrder><ns:isDeleted>true</ns:isDeleted></ns:articleGroups>
            </ns:articleGroupList></ns:GetArticleGroupsResponse></E:Body></E:Envelope>"#;
        let groups: GetArticleGroupsResponse =
            crate::soap::parse("getArticleGroups", xml.as_bytes()).expect("parses");
        let mut paths = HashMap::new();
        for top in &groups.article_group_list.article_groups {
            collect_paths(top, &mut Vec::new(), &mut paths, 0);
        }
        assert_eq!(paths[&11], vec!["Kleding".to_owned(), "Dames".to_owned()]);
        assert_eq!(paths[&1], vec!["Kleding".to_owned()]);
        assert!(!paths.contains_key(&9), "deleted groups make no category");
    }
}
