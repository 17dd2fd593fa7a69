//! The handlebars engine: templates (`pulumi/*.hbs`) and partials (`pulumi/partials/*.hbs`) are read from
//! the project at run time so users can edit them; strict mode, and the helpers `yaml`, `eq`,
//! `concat`, `tags` and `asgTags`. [`yaml_scalar`] is the one escaping function: `{{yaml x}}` and the
//! tag lists emit stack values through it as YAML double-quoted scalars. Plain `{{x}}` is not
//! escaped (it is used inside larger strings and the user-data script): [`super::guard`] refuses to
//! render when any value it could emit is outside the plain charset.
use handlebars::{
    handlebars_helper, Context, Handlebars, Helper, HelperResult, Output, RenderContext,
    RenderErrorReason,
};
use serde_json::{json, Value};
use std::path::Path;

use super::RenderError;

/// A registry holding every template and partial under `dir`.
pub(super) fn load(dir: &Path) -> Result<Handlebars<'static>, RenderError> {
    if !dir.is_dir() {
        return Err(RenderError::NoTemplates { dir: dir.to_path_buf() });
    }
    let mut hb = Handlebars::new();
    hb.set_strict_mode(true);
    hb.register_escape_fn(handlebars::no_escape);
    register_dir(&mut hb, dir, "")?;
    register_dir(&mut hb, &dir.join("partials"), "")?;
    handlebars_helper!(eq: |a: Value, b: Value| a == b);
    handlebars_helper!(concat: |a: str, b: str| format!("{a}{b}"));
    hb.register_helper("eq", Box::new(eq));
    hb.register_helper("concat", Box::new(concat));
    hb.register_helper("yaml", Box::new(yaml_helper));
    hb.register_helper("tags", Box::new(tags_helper));
    hb.register_helper("asgTags", Box::new(tags_helper));
    Ok(hb)
}

fn register_dir(hb: &mut Handlebars<'static>, dir: &Path, prefix: &str) -> Result<(), RenderError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(RenderError::Read { path: dir.to_path_buf(), source }),
    };
    let mut paths: Vec<_> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "hbs"))
        .collect();
    paths.sort();
    for path in paths {
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else { continue };
        let text = std::fs::read_to_string(&path)
            .map_err(|source| RenderError::Read { path: path.clone(), source })?;
        let name = format!("{prefix}{stem}");
        hb.register_template_string(&name, text).map_err(|e| RenderError::Template {
            name: path.display().to_string(),
            message: e.to_string(),
        })?;
    }
    Ok(())
}

/// Render template `name` with `data`.
pub(super) fn render(
    hb: &Handlebars<'static>,
    name: &str,
    data: &Value,
) -> Result<String, RenderError> {
    if !hb.has_template(name) {
        return Err(RenderError::Template {
            name: format!("{name}.hbs"),
            message: "template not found under pulumi/".into(),
        });
    }
    hb.render(name, data)
        .map_err(|e| RenderError::Template { name: format!("{name}.hbs"), message: e.to_string() })
}

/// The one escaping function: `value` as a one-line JSON document — for a string, a YAML
/// double-quoted scalar whose quotes, backslashes and control characters are escaped — with a literal
/// `${` doubled to `$${` so Pulumi YAML does not read it as an interpolation.
pub(super) fn yaml_scalar(value: &Value) -> Result<String, RenderErrorReason> {
    let text = serde_json::to_string(value).map_err(|e| RenderErrorReason::Other(e.to_string()))?;
    Ok(text.replace("${", "$${"))
}

/// `{{yaml value}}`: [`yaml_scalar`].
fn yaml_helper(
    h: &Helper,
    _: &Handlebars,
    _: &Context,
    _: &mut RenderContext,
    out: &mut dyn Output,
) -> HelperResult {
    let param = h.param(0).ok_or(RenderErrorReason::ParamNotFoundForIndex("yaml", 0))?;
    // Strict mode does not cover helper parameters: a misspelt variable would render `null`.
    if param.is_value_missing() {
        return Err(RenderErrorReason::MissingVariable(param.relative_path().cloned()).into());
    }
    out.write(&yaml_scalar(param.value())?)?;
    Ok(())
}

/// `tags "part"` / `asgTags "part"`: a `Name` tag `orch-<env>-<part>` plus the stack's tags, as the
/// `[{key, value}]` list aws-native takes (`asgTags` adds `propagateAtLaunch: true`).
fn tags_helper(
    h: &Helper,
    _: &Handlebars,
    ctx: &Context,
    _: &mut RenderContext,
    out: &mut dyn Output,
) -> HelperResult {
    let part = h
        .param(0)
        .and_then(|p| p.value().as_str())
        .ok_or(RenderErrorReason::ParamNotFoundForIndex("tags", 0))?;
    let root = ctx.data();
    let env = root.get("env").and_then(Value::as_str).unwrap_or_default();
    let asg = h.name() == "asgTags";
    let mut tags = vec![("Name".to_string(), format!("orch-{env}-{part}"))];
    if let Some(map) = root.get("tags").and_then(Value::as_object) {
        tags.extend(
            map.iter()
                .filter(|(k, _)| k.as_str() != "Name")
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())),
        );
    }
    let list: Vec<Value> = tags
        .into_iter()
        .map(|(key, value)| {
            if asg {
                json!({"key": key, "value": value, "propagateAtLaunch": true})
            } else {
                json!({"key": key, "value": value})
            }
        })
        .collect();
    out.write(&yaml_scalar(&Value::Array(list))?)?;
    Ok(())
}
