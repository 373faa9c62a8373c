//! The checked geometry of a batched convolution: channel counts, groups and the two
//! spatial axes.

use super::settings::{AxisPlan, Conv2dSettings, PaddingMode};
use crate::error::ShapeError;

/// Everything a convolution kernel needs to know, checked once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ConvPlan {
    pub batch: usize,
    pub in_channels: usize,
    pub out_channels: usize,
    pub groups: usize,
    pub height: AxisPlan,
    pub width: AxisPlan,
    pub mode: PaddingMode,
}

/// The shapes of the arguments as the caller passed them, for error messages.
pub(crate) struct Shapes<'a> {
    pub operation: &'static str,
    pub named: &'a [(&'static str, &'a [usize])],
}

impl Shapes<'_> {
    pub fn error(&self, reason: String) -> ShapeError {
        self.named.iter().fold(
            ShapeError::new(self.operation, reason),
            |error, (name, shape)| error.with_shape(name, shape),
        )
    }
}

impl ConvPlan {
    /// Checks an `N x C x H x W` input against an `O x C/groups x KH x KW` weight and an
    /// optional bias of length `O`.
    pub fn new(
        input: [usize; 4],
        weight: [usize; 4],
        bias: Option<usize>,
        settings: &Conv2dSettings,
        shapes: &Shapes<'_>,
    ) -> Result<Self, ShapeError> {
        let [batch, in_channels, height, width] = input;
        let [out_channels, group_channels, kernel_height, kernel_width] = weight;
        let groups = settings.groups;
        if groups == 0 {
            return Err(shapes.error("groups must be positive, found 0".into()));
        }
        if in_channels % groups != 0 {
            return Err(shapes.error(format!(
                "groups {groups} does not divide the {in_channels} input channels"
            )));
        }
        if out_channels % groups != 0 {
            return Err(shapes.error(format!(
                "groups {groups} does not divide the {out_channels} output channels of the weight"
            )));
        }
        if group_channels * groups != in_channels {
            return Err(shapes.error(format!(
                "the input has {in_channels} channels but the weight expects {} ({group_channels} per group x {groups} groups)",
                group_channels * groups
            )));
        }
        if let Some(len) = bias {
            if len != out_channels {
                return Err(shapes.error(format!(
                    "the bias has length {len} but the weight has {out_channels} output channels"
                )));
            }
        }
        let axis = |name: &str, input, kernel, index: usize| {
            AxisPlan::new(
                input,
                kernel,
                settings.padding[index],
                settings.stride[index],
                settings.dilation[index],
            )
            .and_then(|plan| {
                settings
                    .padding_mode
                    .check(name, input, plan.before, plan.after)
                    .map(|()| plan)
            })
            .map_err(|reason| shapes.error(format!("{name} axis: {reason}")))
        };
        let height = axis("height", height, kernel_height, 0)?;
        let width = axis("width", width, kernel_width, 1)?;
        Ok(Self {
            batch,
            in_channels,
            out_channels,
            groups,
            height,
            width,
            mode: settings.padding_mode,
        })
    }

    pub fn in_per_group(&self) -> usize {
        self.in_channels / self.groups
    }

    pub fn out_per_group(&self) -> usize {
        self.out_channels / self.groups
    }

    pub fn output_shape(&self) -> [usize; 4] {
        [
            self.batch,
            self.out_channels,
            self.height.output,
            self.width.output,
        ]
    }

    pub fn weight_shape(&self) -> [usize; 4] {
        [
            self.out_channels,
            self.in_per_group(),
            self.height.kernel,
            self.width.kernel,
        ]
    }

    /// Whether the padding must be written into the input before convolving: it is not
    /// zeros, and there is some.
    pub fn needs_explicit_padding(&self) -> bool {
        self.mode != PaddingMode::Zeros
            && (self.height.before + self.height.after + self.width.before + self.width.after) > 0
    }

    /// Returns the plan over the input with its padding written in.
    pub fn padded(&self) -> Self {
        Self {
            height: self.height.padded(),
            width: self.width.padded(),
            mode: PaddingMode::Zeros,
            ..*self
        }
    }

    /// Multiply-adds of one pass: `N * O * OH * OW * C/groups * KH * KW`.
    pub fn macs(&self) -> usize {
        self.batch
            * self.out_channels
            * self.height.output
            * self.width.output
            * self.in_per_group()
            * self.height.kernel
            * self.width.kernel
    }
}
