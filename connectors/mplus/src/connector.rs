//! One configured connection: the typed config, the SOAP client, and the reference data a
//! session reads once (the article group tree, the VAT table), kept for the instance's life.

use std::collections::HashMap;
use std::rc::Rc;

use koppel_sdk::{ConnectorError, Decimal, Result};

use crate::config::MplusConfig;
use crate::ops;
use crate::soap::{Client, Transport};
use crate::wire::{
    ArticleGroup, BranchesResponse, GetArticleGroupsResponse, VatGroup, VatGroupListResponse,
};

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
    branch_country: Option<Option<String>>,
}

/// The order branch's VAT tables (code → rate): its own country's, and per country (alpha-3)
/// every one the branch has.
#[derive(Clone, Debug, Default)]
pub struct VatTables {
    pub own: HashMap<i32, Decimal>,
    pub own_country: Option<String>,
    pub by_country: HashMap<String, HashMap<i32, Decimal>>,
}

impl VatTables {
    /// The table an order taxed in `country` (alpha-2) is booked with, and the country to name
    /// in `vatCountryIso3`: the country's own table when the branch has one, else the
    /// branch's (no country named).
    pub fn for_country(&self, country: &str) -> (&HashMap<i32, Decimal>, Option<String>) {
        match crate::country::alpha3(country)
            .and_then(|c| self.by_country.get(&c).map(|table| (table, c)))
        {
            Some((table, c)) => (table, Some(c)),
            None => (&self.own, None),
        }
    }
}

impl<T: Transport> Mplus<T> {
    pub fn new(config: MplusConfig, transport: T) -> Self {
        Mplus {
            config,
            client: Client::new(transport),
            catalogue: None,
            vat_groups: None,
            branch_country: None,
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

    /// The order branch's VAT tables: its own country's, and every other country's the
    /// branch has one for (`getVatGroupList` has an entry per branch and country).
    pub fn vat_tables(&mut self) -> Result<VatTables> {
        let branch = self.config.branch;
        let groups = self.vat_groups()?;
        let of_branch: Vec<&VatGroup> = groups
            .iter()
            .filter(|g| g.branch_number.is_none_or(|b| b == branch))
            .collect();
        let mut countries: Vec<String> = of_branch
            .iter()
            .filter_map(|g| g.country_iso3.as_deref())
            .map(|c| c.trim().to_ascii_uppercase())
            .filter(|c| !c.is_empty())
            .collect();
        countries.sort_unstable();
        countries.dedup();
        // The branch's own country decides which table its articles' codes are in; it only
        // needs asking when the branch has tables of several countries.
        let own = match countries.as_slice() {
            [] => None,
            [only] => Some(only.clone()),
            _ => self.branch_country()?,
        };
        let table = |country: Option<&str>| -> HashMap<i32, Decimal> {
            let applies = |g: &&&VatGroup| match (country, g.country_iso3.as_deref()) {
                (_, None) => true,
                (Some(c), Some(gc)) => gc.trim().eq_ignore_ascii_case(c),
                (None, Some(_)) => true,
            };
            let mut table = HashMap::new();
            // Entries without a branch apply to all; the branch's own win.
            for g in of_branch
                .iter()
                .filter(|g| g.branch_number.is_none())
                .filter(applies)
            {
                table.insert(g.vat_code, vat_rate(g.vat_percentage));
            }
            for g in of_branch
                .iter()
                .filter(|g| g.branch_number.is_some())
                .filter(applies)
            {
                table.insert(g.vat_code, vat_rate(g.vat_percentage));
            }
            table
        };
        Ok(VatTables {
            own: table(own.as_deref()),
            own_country: own.clone(),
            by_country: countries
                .iter()
                .map(|c| (c.clone(), table(Some(c))))
                .collect(),
        })
    }

    /// The order branch's country (`getBranches`), once per instance.
    pub fn branch_country(&mut self) -> Result<Option<String>> {
        if let Some(country) = &self.branch_country {
            return Ok(country.clone());
        }
        let answer: BranchesResponse = self.client.call(ops::get_branches(), true)?;
        let country = answer
            .branches
            .branch
            .iter()
            .find(|b| b.branch_number == self.config.branch)
            .and_then(|b| b.country_iso3.as_deref())
            .map(|c| c.trim().to_ascii_uppercase())
            .filter(|c| !c.is_empty());
        self.branch_country = Some(country.clone());
        Ok(country)
    }

    /// The VAT table of the order branch's own country.
    pub fn vat_table(&mut self) -> Result<HashMap<i32, Decimal>> {
        Ok(self.vat_tables()?.own)
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
