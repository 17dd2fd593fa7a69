//! The price table of a region, `data/prices/<region>.json`: on-demand list prices keyed by what
//! orch prices (`ec2.instance.t3.micro`, `ec2.nat.hour`, ...), each with the AWS Price List offer
//! and usage type it comes from, and the date the table was taken. `scripts/prices-refresh.py`
//! writes it from the Price List bulk offer files.
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::CostError;

/// One region's prices.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct PriceTable {
    pub region: String,
    pub currency: String,
    /// The day the prices were taken (YYYY-MM-DD).
    pub taken: String,
    /// Offer code → the bulk offer file's URL.
    pub offers: BTreeMap<String, String>,
    pub prices: BTreeMap<String, Price>,
    #[serde(skip)]
    pub path: PathBuf,
}

/// One price: US dollars per `unit`, and where in the Price List it is.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Price {
    pub usd: f64,
    pub unit: String,
    pub offer: String,
    pub usagetype: String,
}

impl PriceTable {
    /// Read and check the table at `path` (made for `region`).
    pub(crate) fn load(path: &Path, region: &str) -> Result<Self, CostError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(CostError::NoTable { region: region.into(), path: path.into() })
            }
            Err(e) => return Err(CostError::table(path, e.to_string())),
        };
        let mut table: PriceTable =
            serde_json::from_str(&text).map_err(|e| CostError::table(path, e.to_string()))?;
        table.path = path.into();
        if table.region != region {
            return Err(CostError::table(
                path,
                format!("it is the table of `{}`, not `{region}`", table.region),
            ));
        }
        if table.currency != "USD" {
            return Err(CostError::table(path, format!("currency `{}`: only USD", table.currency)));
        }
        for (key, price) in &table.prices {
            if !price.usd.is_finite() || price.usd < 0.0 {
                return Err(CostError::table(path, format!("`{key}`: {} is no price", price.usd)));
            }
            if !table.offers.contains_key(&price.offer) {
                return Err(CostError::table(
                    path,
                    format!("`{key}` names offer `{}`, which `offers` lacks", price.offer),
                ));
            }
        }
        Ok(table)
    }

    /// The price under `key`; a missing one is an error naming the key, the resource and the file.
    pub(crate) fn get(&self, key: &str, resource: &str) -> Result<&Price, CostError> {
        self.prices.get(key).ok_or_else(|| CostError::NoPrice {
            key: key.into(),
            resource: resource.into(),
            path: self.path.clone(),
        })
    }

    /// Where a price comes from: offer, usage type and date.
    pub(crate) fn source(&self, price: &Price) -> String {
        format!("{} {} ({})", price.offer, price.usagetype, self.taken)
    }

    /// The bulk offer file of a price.
    pub(crate) fn url(&self, price: &Price) -> String {
        self.offers.get(&price.offer).cloned().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo_table() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("data/prices/eu-west-1.json")
    }

    #[test]
    fn the_committed_table_loads_and_every_entry_names_a_price_list_offer_file() {
        let table = PriceTable::load(&repo_table(), "eu-west-1").unwrap();
        assert!(table.prices.len() > 20);
        for price in table.prices.values() {
            let url = table.url(price);
            assert!(
                url.starts_with("https://pricing.us-east-1.amazonaws.com/offers/v1.0/aws/")
                    && url.ends_with(&format!("/current/{}/index.json", table.region)),
                "{url}"
            );
            assert!(price.usagetype.starts_with("EU-"), "{}", price.usagetype);
        }
    }

    #[test]
    fn a_table_of_another_region_or_a_missing_one_is_refused() {
        let wrong = PriceTable::load(&repo_table(), "us-east-1").unwrap_err();
        assert!(wrong.to_string().contains("not `us-east-1`"), "{wrong}");
        let missing = PriceTable::load(Path::new("/nonexistent/x.json"), "x-y-1").unwrap_err();
        assert!(matches!(missing, CostError::NoTable { .. }), "{missing}");
    }
}
