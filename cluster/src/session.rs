//! What the scheduler and the executors register besides Ballista's defaults: the analyzer's
//! functions, and object stores opened on demand from a plan's URLs.

use std::sync::Arc;

use ballista_core::registry::BallistaFunctionRegistry;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::FunctionRegistry;
use datafusion::execution::object_store::{DefaultObjectStoreRegistry, ObjectStoreRegistry};
use datafusion::execution::session_state::SessionState;
use datafusion::prelude::SessionConfig;
use object_store::ObjectStore;
use url::Url;

/// The scheduler's session for a client's job: Ballista's default (its optimizer rules), with
/// the analyzer's functions (the logical plan is decoded here) and the object stores (the scans
/// list their files here).
pub fn scheduler_session(config: SessionConfig) -> Result<SessionState> {
    let state = ballista_core::utils::default_session_builder(config)?;
    let runtime = state.runtime_env().clone();
    let runtime = datafusion::execution::runtime_env::RuntimeEnvBuilder::from_runtime_env(&runtime)
        .with_object_store_registry(Arc::new(EnvObjectStores::default()))
        .build_arc()?;
    let mut state = datafusion::execution::session_state::SessionStateBuilder::new_from_existing(state)
        .with_runtime_env(runtime)
        .build();
    for udf in gespann_analyze::session::udfs() {
        state.register_udf(Arc::new(udf))?;
    }
    Ok(state)
}

/// The executors' functions: those a client's session has (Ballista's scalar functions, which
/// add DataFusion's nested ones such as `range` to the defaults; the registry's own default
/// lacks them), and the analyzer's.
pub fn executor_functions() -> BallistaFunctionRegistry {
    let mut registry = BallistaFunctionRegistry::default();
    for f in ballista_core::extension::ballista_scalar_functions() {
        registry.scalar_functions.insert(f.name().to_string(), f);
    }
    for f in ballista_core::extension::ballista_aggregate_functions() {
        registry.aggregate_functions.insert(f.name().to_string(), f);
    }
    for f in ballista_core::extension::ballista_window_functions() {
        registry.window_functions.insert(f.name().to_string(), f);
    }
    for udf in gespann_analyze::session::udfs() {
        registry.scalar_functions.insert(udf.name().to_string(), Arc::new(udf));
    }
    registry
}

/// Local files, plus each object store a plan's URL names, opened on first use from the
/// environment as `gespann analyze` opens its inputs ([`gespann_inputs::store_for_url`]).
#[derive(Debug, Default)]
pub struct EnvObjectStores {
    known: DefaultObjectStoreRegistry,
}

impl ObjectStoreRegistry for EnvObjectStores {
    fn register_store(&self, url: &Url, store: Arc<dyn ObjectStore>) -> Option<Arc<dyn ObjectStore>> {
        self.known.register_store(url, store)
    }

    fn deregister_store(&self, url: &Url) -> Result<Arc<dyn ObjectStore>> {
        self.known.deregister_store(url)
    }

    fn get_store(&self, url: &Url) -> Result<Arc<dyn ObjectStore>> {
        if let Ok(store) = self.known.get_store(url) {
            return Ok(store);
        }
        let store = gespann_inputs::store_for_url(url).map_err(|e| DataFusionError::External(Box::new(e)))?;
        let root = Url::parse(&url[..url::Position::BeforePath]).map_err(|e| DataFusionError::External(Box::new(e)))?;
        self.known.register_store(&root, store.clone());
        Ok(store)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_are_opened_once_per_bucket() {
        let stores = EnvObjectStores::default();
        assert!(stores.get_store(&Url::parse("file:///").unwrap()).is_ok());
        let a = stores.get_store(&Url::parse("s3://bucket-a/x/y.parquet").unwrap()).unwrap();
        let again = stores.get_store(&Url::parse("s3://bucket-a/z.parquet").unwrap()).unwrap();
        assert!(Arc::ptr_eq(&a, &again));
        let err = stores.get_store(&Url::parse("ftp://host/x").unwrap()).unwrap_err().to_string();
        assert!(err.contains("ftp://host/x"), "{err}");
    }

    #[test]
    fn both_roles_know_the_reports_functions() {
        let state = scheduler_session(SessionConfig::new()).unwrap();
        let registry = executor_functions();
        for udf in gespann_analyze::session::udfs() {
            assert!(state.scalar_functions().contains_key(udf.name()), "{}", udf.name());
            assert!(registry.scalar_functions.contains_key(udf.name()), "{}", udf.name());
        }
        // The charts' `unnest(range(..))`: a nested function the registry's default lacks.
        assert!(registry.scalar_functions.contains_key("range"));
        // Every function a planning session knows, an executor knows (by its name, which a
        // plan carries; the session also lists each alias).
        for f in state.scalar_functions().values() {
            assert!(registry.scalar_functions.contains_key(f.name()), "{}", f.name());
        }
        for f in state.aggregate_functions().values() {
            assert!(registry.aggregate_functions.contains_key(f.name()), "{}", f.name());
        }
    }
}
