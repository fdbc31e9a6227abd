import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RangePreset(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RANGE_PRESET_UNSPECIFIED: _ClassVar[RangePreset]
    RANGE_PRESET_TODAY: _ClassVar[RangePreset]
    RANGE_PRESET_YESTERDAY: _ClassVar[RangePreset]
    RANGE_PRESET_LAST_WEEK: _ClassVar[RangePreset]
    RANGE_PRESET_MONTH_TO_DATE: _ClassVar[RangePreset]
    RANGE_PRESET_PREVIOUS_MONTH: _ClassVar[RangePreset]
    RANGE_PRESET_YEAR_TO_DATE: _ClassVar[RangePreset]
    RANGE_PRESET_EVER: _ClassVar[RangePreset]

class BirthdayMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BIRTHDAY_MODE_UNSPECIFIED: _ClassVar[BirthdayMode]
    BIRTHDAY_MODE_TODAY: _ClassVar[BirthdayMode]
    BIRTHDAY_MODE_THIS_MONTH: _ClassVar[BirthdayMode]
    BIRTHDAY_MODE_MONTH: _ClassVar[BirthdayMode]
    BIRTHDAY_MODE_NEXT_DAYS: _ClassVar[BirthdayMode]

class ReachableChannel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REACHABLE_CHANNEL_UNSPECIFIED: _ClassVar[ReachableChannel]
    REACHABLE_CHANNEL_HAS_EMAIL: _ClassVar[ReachableChannel]
    REACHABLE_CHANNEL_HAS_PHONE: _ClassVar[ReachableChannel]
    REACHABLE_CHANNEL_EMAIL_OPT_IN: _ClassVar[ReachableChannel]
    REACHABLE_CHANNEL_SMS_OPT_IN: _ClassVar[ReachableChannel]

class Period(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PERIOD_UNSPECIFIED: _ClassVar[Period]
    PERIOD_WEEK: _ClassVar[Period]
    PERIOD_MONTH: _ClassVar[Period]

class OrderKey(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ORDER_KEY_UNSPECIFIED: _ClassVar[OrderKey]
    ORDER_KEY_SPEND: _ClassVar[OrderKey]
    ORDER_KEY_PURCHASE_COUNT: _ClassVar[OrderKey]
    ORDER_KEY_LOYALTY_POINTS: _ClassVar[OrderKey]
    ORDER_KEY_LAST_PURCHASE: _ClassVar[OrderKey]
    ORDER_KEY_ORDER_COUNT: _ClassVar[OrderKey]
    ORDER_KEY_AVERAGE_ORDER_VALUE: _ClassVar[OrderKey]

class ExportFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EXPORT_FORMAT_UNSPECIFIED: _ClassVar[ExportFormat]
    EXPORT_FORMAT_CSV: _ClassVar[ExportFormat]
    EXPORT_FORMAT_PARQUET: _ClassVar[ExportFormat]

class EvaluationKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVALUATION_KIND_UNSPECIFIED: _ClassVar[EvaluationKind]
    EVALUATION_KIND_FULL: _ClassVar[EvaluationKind]
    EVALUATION_KIND_INCREMENTAL: _ClassVar[EvaluationKind]
RANGE_PRESET_UNSPECIFIED: RangePreset
RANGE_PRESET_TODAY: RangePreset
RANGE_PRESET_YESTERDAY: RangePreset
RANGE_PRESET_LAST_WEEK: RangePreset
RANGE_PRESET_MONTH_TO_DATE: RangePreset
RANGE_PRESET_PREVIOUS_MONTH: RangePreset
RANGE_PRESET_YEAR_TO_DATE: RangePreset
RANGE_PRESET_EVER: RangePreset
BIRTHDAY_MODE_UNSPECIFIED: BirthdayMode
BIRTHDAY_MODE_TODAY: BirthdayMode
BIRTHDAY_MODE_THIS_MONTH: BirthdayMode
BIRTHDAY_MODE_MONTH: BirthdayMode
BIRTHDAY_MODE_NEXT_DAYS: BirthdayMode
REACHABLE_CHANNEL_UNSPECIFIED: ReachableChannel
REACHABLE_CHANNEL_HAS_EMAIL: ReachableChannel
REACHABLE_CHANNEL_HAS_PHONE: ReachableChannel
REACHABLE_CHANNEL_EMAIL_OPT_IN: ReachableChannel
REACHABLE_CHANNEL_SMS_OPT_IN: ReachableChannel
PERIOD_UNSPECIFIED: Period
PERIOD_WEEK: Period
PERIOD_MONTH: Period
ORDER_KEY_UNSPECIFIED: OrderKey
ORDER_KEY_SPEND: OrderKey
ORDER_KEY_PURCHASE_COUNT: OrderKey
ORDER_KEY_LOYALTY_POINTS: OrderKey
ORDER_KEY_LAST_PURCHASE: OrderKey
ORDER_KEY_ORDER_COUNT: OrderKey
ORDER_KEY_AVERAGE_ORDER_VALUE: OrderKey
EXPORT_FORMAT_UNSPECIFIED: ExportFormat
EXPORT_FORMAT_CSV: ExportFormat
EXPORT_FORMAT_PARQUET: ExportFormat
EVALUATION_KIND_UNSPECIFIED: EvaluationKind
EVALUATION_KIND_FULL: EvaluationKind
EVALUATION_KIND_INCREMENTAL: EvaluationKind

class Flag(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Cmp(_message.Message):
    __slots__ = ("gt", "ge", "lt", "le", "eq", "between")
    GT_FIELD_NUMBER: _ClassVar[int]
    GE_FIELD_NUMBER: _ClassVar[int]
    LT_FIELD_NUMBER: _ClassVar[int]
    LE_FIELD_NUMBER: _ClassVar[int]
    EQ_FIELD_NUMBER: _ClassVar[int]
    BETWEEN_FIELD_NUMBER: _ClassVar[int]
    gt: int
    ge: int
    lt: int
    le: int
    eq: int
    between: Between
    def __init__(self, gt: _Optional[int] = ..., ge: _Optional[int] = ..., lt: _Optional[int] = ..., le: _Optional[int] = ..., eq: _Optional[int] = ..., between: _Optional[_Union[Between, _Mapping]] = ...) -> None: ...

class Between(_message.Message):
    __slots__ = ("low", "high")
    LOW_FIELD_NUMBER: _ClassVar[int]
    HIGH_FIELD_NUMBER: _ClassVar[int]
    low: int
    high: int
    def __init__(self, low: _Optional[int] = ..., high: _Optional[int] = ...) -> None: ...

class DateOffset(_message.Message):
    __slots__ = ("months", "days")
    MONTHS_FIELD_NUMBER: _ClassVar[int]
    DAYS_FIELD_NUMBER: _ClassVar[int]
    months: int
    days: int
    def __init__(self, months: _Optional[int] = ..., days: _Optional[int] = ...) -> None: ...

class DateBound(_message.Message):
    __slots__ = ("date", "offset")
    DATE_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    date: str
    offset: DateOffset
    def __init__(self, date: _Optional[str] = ..., offset: _Optional[_Union[DateOffset, _Mapping]] = ...) -> None: ...

class CustomRange(_message.Message):
    __slots__ = ("start", "end")
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    start: DateBound
    end: DateBound
    def __init__(self, start: _Optional[_Union[DateBound, _Mapping]] = ..., end: _Optional[_Union[DateBound, _Mapping]] = ...) -> None: ...

class TimeRange(_message.Message):
    __slots__ = ("preset", "last_n_days", "last_n_months", "custom")
    PRESET_FIELD_NUMBER: _ClassVar[int]
    LAST_N_DAYS_FIELD_NUMBER: _ClassVar[int]
    LAST_N_MONTHS_FIELD_NUMBER: _ClassVar[int]
    CUSTOM_FIELD_NUMBER: _ClassVar[int]
    preset: RangePreset
    last_n_days: int
    last_n_months: int
    custom: CustomRange
    def __init__(self, preset: _Optional[_Union[RangePreset, str]] = ..., last_n_days: _Optional[int] = ..., last_n_months: _Optional[int] = ..., custom: _Optional[_Union[CustomRange, _Mapping]] = ...) -> None: ...

class ProductFilter(_message.Message):
    __slots__ = ("department", "metal", "brand", "strain", "inventory_group", "inventory_type", "product", "shop")
    DEPARTMENT_FIELD_NUMBER: _ClassVar[int]
    METAL_FIELD_NUMBER: _ClassVar[int]
    BRAND_FIELD_NUMBER: _ClassVar[int]
    STRAIN_FIELD_NUMBER: _ClassVar[int]
    INVENTORY_GROUP_FIELD_NUMBER: _ClassVar[int]
    INVENTORY_TYPE_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_FIELD_NUMBER: _ClassVar[int]
    SHOP_FIELD_NUMBER: _ClassVar[int]
    department: _containers.RepeatedScalarFieldContainer[str]
    metal: _containers.RepeatedScalarFieldContainer[str]
    brand: _containers.RepeatedScalarFieldContainer[str]
    strain: _containers.RepeatedScalarFieldContainer[str]
    inventory_group: _containers.RepeatedScalarFieldContainer[str]
    inventory_type: _containers.RepeatedScalarFieldContainer[str]
    product: _containers.RepeatedScalarFieldContainer[str]
    shop: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, department: _Optional[_Iterable[str]] = ..., metal: _Optional[_Iterable[str]] = ..., brand: _Optional[_Iterable[str]] = ..., strain: _Optional[_Iterable[str]] = ..., inventory_group: _Optional[_Iterable[str]] = ..., inventory_type: _Optional[_Iterable[str]] = ..., product: _Optional[_Iterable[str]] = ..., shop: _Optional[_Iterable[str]] = ...) -> None: ...

class CustomerIds(_message.Message):
    __slots__ = ("ids",)
    IDS_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, ids: _Optional[_Iterable[int]] = ...) -> None: ...

class Search(_message.Message):
    __slots__ = ("text", "fields")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    text: str
    fields: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, text: _Optional[str] = ..., fields: _Optional[_Iterable[str]] = ...) -> None: ...

class Birthday(_message.Message):
    __slots__ = ("mode", "month", "days")
    MODE_FIELD_NUMBER: _ClassVar[int]
    MONTH_FIELD_NUMBER: _ClassVar[int]
    DAYS_FIELD_NUMBER: _ClassVar[int]
    mode: BirthdayMode
    month: int
    days: int
    def __init__(self, mode: _Optional[_Union[BirthdayMode, str]] = ..., month: _Optional[int] = ..., days: _Optional[int] = ...) -> None: ...

class Joined(_message.Message):
    __slots__ = ("range",)
    RANGE_FIELD_NUMBER: _ClassVar[int]
    range: TimeRange
    def __init__(self, range: _Optional[_Union[TimeRange, _Mapping]] = ...) -> None: ...

class Values(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, values: _Optional[_Iterable[str]] = ...) -> None: ...

class Tags(_message.Message):
    __slots__ = ("any", "all")
    ANY_FIELD_NUMBER: _ClassVar[int]
    ALL_FIELD_NUMBER: _ClassVar[int]
    any: Values
    all: Values
    def __init__(self, any: _Optional[_Union[Values, _Mapping]] = ..., all: _Optional[_Union[Values, _Mapping]] = ...) -> None: ...

class Bought(_message.Message):
    __slots__ = ("filter", "range")
    FILTER_FIELD_NUMBER: _ClassVar[int]
    RANGE_FIELD_NUMBER: _ClassVar[int]
    filter: ProductFilter
    range: TimeRange
    def __init__(self, filter: _Optional[_Union[ProductFilter, _Mapping]] = ..., range: _Optional[_Union[TimeRange, _Mapping]] = ...) -> None: ...

class LineAggregate(_message.Message):
    __slots__ = ("cmp", "filter", "range")
    CMP_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    RANGE_FIELD_NUMBER: _ClassVar[int]
    cmp: Cmp
    filter: ProductFilter
    range: TimeRange
    def __init__(self, cmp: _Optional[_Union[Cmp, _Mapping]] = ..., filter: _Optional[_Union[ProductFilter, _Mapping]] = ..., range: _Optional[_Union[TimeRange, _Mapping]] = ...) -> None: ...

class Visited(_message.Message):
    __slots__ = ("cmp", "shops", "range")
    CMP_FIELD_NUMBER: _ClassVar[int]
    SHOPS_FIELD_NUMBER: _ClassVar[int]
    RANGE_FIELD_NUMBER: _ClassVar[int]
    cmp: Cmp
    shops: _containers.RepeatedScalarFieldContainer[str]
    range: TimeRange
    def __init__(self, cmp: _Optional[_Union[Cmp, _Mapping]] = ..., shops: _Optional[_Iterable[str]] = ..., range: _Optional[_Union[TimeRange, _Mapping]] = ...) -> None: ...

class UpcomingAppointment(_message.Message):
    __slots__ = ("shops",)
    SHOPS_FIELD_NUMBER: _ClassVar[int]
    shops: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, shops: _Optional[_Iterable[str]] = ...) -> None: ...

class BoughtEvent(_message.Message):
    __slots__ = ("filter",)
    FILTER_FIELD_NUMBER: _ClassVar[int]
    filter: ProductFilter
    def __init__(self, filter: _Optional[_Union[ProductFilter, _Mapping]] = ...) -> None: ...

class VisitedEvent(_message.Message):
    __slots__ = ("shops",)
    SHOPS_FIELD_NUMBER: _ClassVar[int]
    shops: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, shops: _Optional[_Iterable[str]] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("bought", "visited")
    BOUGHT_FIELD_NUMBER: _ClassVar[int]
    VISITED_FIELD_NUMBER: _ClassVar[int]
    bought: BoughtEvent
    visited: VisitedEvent
    def __init__(self, bought: _Optional[_Union[BoughtEvent, _Mapping]] = ..., visited: _Optional[_Union[VisitedEvent, _Mapping]] = ...) -> None: ...

class FilterRange(_message.Message):
    __slots__ = ("filter", "range")
    FILTER_FIELD_NUMBER: _ClassVar[int]
    RANGE_FIELD_NUMBER: _ClassVar[int]
    filter: ProductFilter
    range: TimeRange
    def __init__(self, filter: _Optional[_Union[ProductFilter, _Mapping]] = ..., range: _Optional[_Union[TimeRange, _Mapping]] = ...) -> None: ...

class Regularly(_message.Message):
    __slots__ = ("event", "period", "periods", "min_periods", "min_per_period")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    PERIODS_FIELD_NUMBER: _ClassVar[int]
    MIN_PERIODS_FIELD_NUMBER: _ClassVar[int]
    MIN_PER_PERIOD_FIELD_NUMBER: _ClassVar[int]
    event: Event
    period: Period
    periods: int
    min_periods: int
    min_per_period: int
    def __init__(self, event: _Optional[_Union[Event, _Mapping]] = ..., period: _Optional[_Union[Period, str]] = ..., periods: _Optional[int] = ..., min_periods: _Optional[int] = ..., min_per_period: _Optional[int] = ...) -> None: ...

class Sequence(_message.Message):
    __slots__ = ("first", "then", "then_not", "within_days", "range")
    FIRST_FIELD_NUMBER: _ClassVar[int]
    THEN_FIELD_NUMBER: _ClassVar[int]
    THEN_NOT_FIELD_NUMBER: _ClassVar[int]
    WITHIN_DAYS_FIELD_NUMBER: _ClassVar[int]
    RANGE_FIELD_NUMBER: _ClassVar[int]
    first: Event
    then: Event
    then_not: Event
    within_days: int
    range: TimeRange
    def __init__(self, first: _Optional[_Union[Event, _Mapping]] = ..., then: _Optional[_Union[Event, _Mapping]] = ..., then_not: _Optional[_Union[Event, _Mapping]] = ..., within_days: _Optional[int] = ..., range: _Optional[_Union[TimeRange, _Mapping]] = ...) -> None: ...

class AverageOrderValue(_message.Message):
    __slots__ = ("cmp", "range")
    CMP_FIELD_NUMBER: _ClassVar[int]
    RANGE_FIELD_NUMBER: _ClassVar[int]
    cmp: Cmp
    range: TimeRange
    def __init__(self, cmp: _Optional[_Union[Cmp, _Mapping]] = ..., range: _Optional[_Union[TimeRange, _Mapping]] = ...) -> None: ...

class PercentileValue(_message.Message):
    __slots__ = ("spend", "purchase_count", "order_count", "last_purchase", "loyalty_points")
    SPEND_FIELD_NUMBER: _ClassVar[int]
    PURCHASE_COUNT_FIELD_NUMBER: _ClassVar[int]
    ORDER_COUNT_FIELD_NUMBER: _ClassVar[int]
    LAST_PURCHASE_FIELD_NUMBER: _ClassVar[int]
    LOYALTY_POINTS_FIELD_NUMBER: _ClassVar[int]
    spend: FilterRange
    purchase_count: FilterRange
    order_count: FilterRange
    last_purchase: FilterRange
    loyalty_points: Flag
    def __init__(self, spend: _Optional[_Union[FilterRange, _Mapping]] = ..., purchase_count: _Optional[_Union[FilterRange, _Mapping]] = ..., order_count: _Optional[_Union[FilterRange, _Mapping]] = ..., last_purchase: _Optional[_Union[FilterRange, _Mapping]] = ..., loyalty_points: _Optional[_Union[Flag, _Mapping]] = ...) -> None: ...

class Percentile(_message.Message):
    __slots__ = ("of", "among", "cmp")
    OF_FIELD_NUMBER: _ClassVar[int]
    AMONG_FIELD_NUMBER: _ClassVar[int]
    CMP_FIELD_NUMBER: _ClassVar[int]
    of: PercentileValue
    among: Condition
    cmp: Cmp
    def __init__(self, of: _Optional[_Union[PercentileValue, _Mapping]] = ..., among: _Optional[_Union[Condition, _Mapping]] = ..., cmp: _Optional[_Union[Cmp, _Mapping]] = ...) -> None: ...

class Rfm(_message.Message):
    __slots__ = ("filter", "range", "among", "r", "f", "m")
    FILTER_FIELD_NUMBER: _ClassVar[int]
    RANGE_FIELD_NUMBER: _ClassVar[int]
    AMONG_FIELD_NUMBER: _ClassVar[int]
    R_FIELD_NUMBER: _ClassVar[int]
    F_FIELD_NUMBER: _ClassVar[int]
    M_FIELD_NUMBER: _ClassVar[int]
    filter: ProductFilter
    range: TimeRange
    among: Condition
    r: Cmp
    f: Cmp
    m: Cmp
    def __init__(self, filter: _Optional[_Union[ProductFilter, _Mapping]] = ..., range: _Optional[_Union[TimeRange, _Mapping]] = ..., among: _Optional[_Union[Condition, _Mapping]] = ..., r: _Optional[_Union[Cmp, _Mapping]] = ..., f: _Optional[_Union[Cmp, _Mapping]] = ..., m: _Optional[_Union[Cmp, _Mapping]] = ...) -> None: ...

class RandomBucket(_message.Message):
    __slots__ = ("salt", "cmp")
    SALT_FIELD_NUMBER: _ClassVar[int]
    CMP_FIELD_NUMBER: _ClassVar[int]
    salt: str
    cmp: Cmp
    def __init__(self, salt: _Optional[str] = ..., cmp: _Optional[_Union[Cmp, _Mapping]] = ...) -> None: ...

class Conditions(_message.Message):
    __slots__ = ("conditions",)
    CONDITIONS_FIELD_NUMBER: _ClassVar[int]
    conditions: _containers.RepeatedCompositeFieldContainer[Condition]
    def __init__(self, conditions: _Optional[_Iterable[_Union[Condition, _Mapping]]] = ...) -> None: ...

class Condition(_message.Message):
    __slots__ = ("all", "customers", "search", "surname", "birthday", "anniversary", "married_today", "age", "joined", "loyalty_member", "loyalty_points", "origin_shop", "gender", "marital_status", "city", "postal_code", "tags", "reachable", "account_balance", "overdue_layby", "bought", "spend", "purchase_count", "visited", "upcoming_appointment", "all_of", "any_of", "first_purchase", "last_purchase", "regularly", "sequence", "order_count", "average_order_value", "percentile", "rfm", "random_bucket", "in_segment", "in_group")
    ALL_FIELD_NUMBER: _ClassVar[int]
    CUSTOMERS_FIELD_NUMBER: _ClassVar[int]
    SEARCH_FIELD_NUMBER: _ClassVar[int]
    SURNAME_FIELD_NUMBER: _ClassVar[int]
    BIRTHDAY_FIELD_NUMBER: _ClassVar[int]
    ANNIVERSARY_FIELD_NUMBER: _ClassVar[int]
    MARRIED_TODAY_FIELD_NUMBER: _ClassVar[int]
    AGE_FIELD_NUMBER: _ClassVar[int]
    JOINED_FIELD_NUMBER: _ClassVar[int]
    LOYALTY_MEMBER_FIELD_NUMBER: _ClassVar[int]
    LOYALTY_POINTS_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_SHOP_FIELD_NUMBER: _ClassVar[int]
    GENDER_FIELD_NUMBER: _ClassVar[int]
    MARITAL_STATUS_FIELD_NUMBER: _ClassVar[int]
    CITY_FIELD_NUMBER: _ClassVar[int]
    POSTAL_CODE_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    REACHABLE_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_BALANCE_FIELD_NUMBER: _ClassVar[int]
    OVERDUE_LAYBY_FIELD_NUMBER: _ClassVar[int]
    BOUGHT_FIELD_NUMBER: _ClassVar[int]
    SPEND_FIELD_NUMBER: _ClassVar[int]
    PURCHASE_COUNT_FIELD_NUMBER: _ClassVar[int]
    VISITED_FIELD_NUMBER: _ClassVar[int]
    UPCOMING_APPOINTMENT_FIELD_NUMBER: _ClassVar[int]
    ALL_OF_FIELD_NUMBER: _ClassVar[int]
    ANY_OF_FIELD_NUMBER: _ClassVar[int]
    NOT_FIELD_NUMBER: _ClassVar[int]
    FIRST_PURCHASE_FIELD_NUMBER: _ClassVar[int]
    LAST_PURCHASE_FIELD_NUMBER: _ClassVar[int]
    REGULARLY_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    ORDER_COUNT_FIELD_NUMBER: _ClassVar[int]
    AVERAGE_ORDER_VALUE_FIELD_NUMBER: _ClassVar[int]
    PERCENTILE_FIELD_NUMBER: _ClassVar[int]
    RFM_FIELD_NUMBER: _ClassVar[int]
    RANDOM_BUCKET_FIELD_NUMBER: _ClassVar[int]
    IN_SEGMENT_FIELD_NUMBER: _ClassVar[int]
    IN_GROUP_FIELD_NUMBER: _ClassVar[int]
    all: Flag
    customers: CustomerIds
    search: Search
    surname: str
    birthday: Birthday
    anniversary: Birthday
    married_today: Flag
    age: Cmp
    joined: Joined
    loyalty_member: Flag
    loyalty_points: Cmp
    origin_shop: Values
    gender: Values
    marital_status: Values
    city: Values
    postal_code: Values
    tags: Tags
    reachable: ReachableChannel
    account_balance: Cmp
    overdue_layby: Flag
    bought: Bought
    spend: LineAggregate
    purchase_count: LineAggregate
    visited: Visited
    upcoming_appointment: UpcomingAppointment
    all_of: Conditions
    any_of: Conditions
    first_purchase: FilterRange
    last_purchase: FilterRange
    regularly: Regularly
    sequence: Sequence
    order_count: LineAggregate
    average_order_value: AverageOrderValue
    percentile: Percentile
    rfm: Rfm
    random_bucket: RandomBucket
    in_segment: str
    in_group: str
    def __init__(self, all: _Optional[_Union[Flag, _Mapping]] = ..., customers: _Optional[_Union[CustomerIds, _Mapping]] = ..., search: _Optional[_Union[Search, _Mapping]] = ..., surname: _Optional[str] = ..., birthday: _Optional[_Union[Birthday, _Mapping]] = ..., anniversary: _Optional[_Union[Birthday, _Mapping]] = ..., married_today: _Optional[_Union[Flag, _Mapping]] = ..., age: _Optional[_Union[Cmp, _Mapping]] = ..., joined: _Optional[_Union[Joined, _Mapping]] = ..., loyalty_member: _Optional[_Union[Flag, _Mapping]] = ..., loyalty_points: _Optional[_Union[Cmp, _Mapping]] = ..., origin_shop: _Optional[_Union[Values, _Mapping]] = ..., gender: _Optional[_Union[Values, _Mapping]] = ..., marital_status: _Optional[_Union[Values, _Mapping]] = ..., city: _Optional[_Union[Values, _Mapping]] = ..., postal_code: _Optional[_Union[Values, _Mapping]] = ..., tags: _Optional[_Union[Tags, _Mapping]] = ..., reachable: _Optional[_Union[ReachableChannel, str]] = ..., account_balance: _Optional[_Union[Cmp, _Mapping]] = ..., overdue_layby: _Optional[_Union[Flag, _Mapping]] = ..., bought: _Optional[_Union[Bought, _Mapping]] = ..., spend: _Optional[_Union[LineAggregate, _Mapping]] = ..., purchase_count: _Optional[_Union[LineAggregate, _Mapping]] = ..., visited: _Optional[_Union[Visited, _Mapping]] = ..., upcoming_appointment: _Optional[_Union[UpcomingAppointment, _Mapping]] = ..., all_of: _Optional[_Union[Conditions, _Mapping]] = ..., any_of: _Optional[_Union[Conditions, _Mapping]] = ..., first_purchase: _Optional[_Union[FilterRange, _Mapping]] = ..., last_purchase: _Optional[_Union[FilterRange, _Mapping]] = ..., regularly: _Optional[_Union[Regularly, _Mapping]] = ..., sequence: _Optional[_Union[Sequence, _Mapping]] = ..., order_count: _Optional[_Union[LineAggregate, _Mapping]] = ..., average_order_value: _Optional[_Union[AverageOrderValue, _Mapping]] = ..., percentile: _Optional[_Union[Percentile, _Mapping]] = ..., rfm: _Optional[_Union[Rfm, _Mapping]] = ..., random_bucket: _Optional[_Union[RandomBucket, _Mapping]] = ..., in_segment: _Optional[str] = ..., in_group: _Optional[str] = ..., **kwargs) -> None: ...

class OrderBy(_message.Message):
    __slots__ = ("key", "filter", "range", "ascending")
    KEY_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    RANGE_FIELD_NUMBER: _ClassVar[int]
    ASCENDING_FIELD_NUMBER: _ClassVar[int]
    key: OrderKey
    filter: ProductFilter
    range: TimeRange
    ascending: bool
    def __init__(self, key: _Optional[_Union[OrderKey, str]] = ..., filter: _Optional[_Union[ProductFilter, _Mapping]] = ..., range: _Optional[_Union[TimeRange, _Mapping]] = ..., ascending: _Optional[bool] = ...) -> None: ...

class Segment(_message.Message):
    __slots__ = ("include", "exclude", "append", "order_by", "limit")
    INCLUDE_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_FIELD_NUMBER: _ClassVar[int]
    APPEND_FIELD_NUMBER: _ClassVar[int]
    ORDER_BY_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    include: Condition
    exclude: Condition
    append: _containers.RepeatedCompositeFieldContainer[Condition]
    order_by: OrderBy
    limit: int
    def __init__(self, include: _Optional[_Union[Condition, _Mapping]] = ..., exclude: _Optional[_Union[Condition, _Mapping]] = ..., append: _Optional[_Iterable[_Union[Condition, _Mapping]]] = ..., order_by: _Optional[_Union[OrderBy, _Mapping]] = ..., limit: _Optional[int] = ...) -> None: ...

class SegmentSource(_message.Message):
    __slots__ = ("segment", "segment_json", "saved_segment")
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_JSON_FIELD_NUMBER: _ClassVar[int]
    SAVED_SEGMENT_FIELD_NUMBER: _ClassVar[int]
    segment: Segment
    segment_json: str
    saved_segment: str
    def __init__(self, segment: _Optional[_Union[Segment, _Mapping]] = ..., segment_json: _Optional[str] = ..., saved_segment: _Optional[str] = ...) -> None: ...

class CountRequest(_message.Message):
    __slots__ = ("dataset", "source", "as_of")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    source: SegmentSource
    as_of: _timestamp_pb2.Timestamp
    def __init__(self, dataset: _Optional[str] = ..., source: _Optional[_Union[SegmentSource, _Mapping]] = ..., as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CountResponse(_message.Message):
    __slots__ = ("count", "email_reachable", "sms_reachable", "missing_ids", "elapsed_ms")
    COUNT_FIELD_NUMBER: _ClassVar[int]
    EMAIL_REACHABLE_FIELD_NUMBER: _ClassVar[int]
    SMS_REACHABLE_FIELD_NUMBER: _ClassVar[int]
    MISSING_IDS_FIELD_NUMBER: _ClassVar[int]
    ELAPSED_MS_FIELD_NUMBER: _ClassVar[int]
    count: int
    email_reachable: int
    sms_reachable: int
    missing_ids: _containers.RepeatedScalarFieldContainer[int]
    elapsed_ms: float
    def __init__(self, count: _Optional[int] = ..., email_reachable: _Optional[int] = ..., sms_reachable: _Optional[int] = ..., missing_ids: _Optional[_Iterable[int]] = ..., elapsed_ms: _Optional[float] = ...) -> None: ...

class Value(_message.Message):
    __slots__ = ("string_value", "int_value", "bool_value", "date_value", "list_value", "double_value")
    STRING_VALUE_FIELD_NUMBER: _ClassVar[int]
    INT_VALUE_FIELD_NUMBER: _ClassVar[int]
    BOOL_VALUE_FIELD_NUMBER: _ClassVar[int]
    DATE_VALUE_FIELD_NUMBER: _ClassVar[int]
    LIST_VALUE_FIELD_NUMBER: _ClassVar[int]
    DOUBLE_VALUE_FIELD_NUMBER: _ClassVar[int]
    string_value: str
    int_value: int
    bool_value: bool
    date_value: str
    list_value: Values
    double_value: float
    def __init__(self, string_value: _Optional[str] = ..., int_value: _Optional[int] = ..., bool_value: _Optional[bool] = ..., date_value: _Optional[str] = ..., list_value: _Optional[_Union[Values, _Mapping]] = ..., double_value: _Optional[float] = ...) -> None: ...

class Row(_message.Message):
    __slots__ = ("customer_id", "fields", "rank_value")
    class FieldsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Value
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Value, _Mapping]] = ...) -> None: ...
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    RANK_VALUE_FIELD_NUMBER: _ClassVar[int]
    customer_id: int
    fields: _containers.MessageMap[str, Value]
    rank_value: Value
    def __init__(self, customer_id: _Optional[int] = ..., fields: _Optional[_Mapping[str, Value]] = ..., rank_value: _Optional[_Union[Value, _Mapping]] = ...) -> None: ...

class PreviewRequest(_message.Message):
    __slots__ = ("dataset", "source", "as_of", "n", "fields", "page_token")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    N_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    source: SegmentSource
    as_of: _timestamp_pb2.Timestamp
    n: int
    fields: _containers.RepeatedScalarFieldContainer[str]
    page_token: str
    def __init__(self, dataset: _Optional[str] = ..., source: _Optional[_Union[SegmentSource, _Mapping]] = ..., as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., n: _Optional[int] = ..., fields: _Optional[_Iterable[str]] = ..., page_token: _Optional[str] = ...) -> None: ...

class PreviewResponse(_message.Message):
    __slots__ = ("rows", "total", "missing_ids", "elapsed_ms", "next_page_token", "as_of")
    ROWS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    MISSING_IDS_FIELD_NUMBER: _ClassVar[int]
    ELAPSED_MS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    rows: _containers.RepeatedCompositeFieldContainer[Row]
    total: int
    missing_ids: _containers.RepeatedScalarFieldContainer[int]
    elapsed_ms: float
    next_page_token: str
    as_of: _timestamp_pb2.Timestamp
    def __init__(self, rows: _Optional[_Iterable[_Union[Row, _Mapping]]] = ..., total: _Optional[int] = ..., missing_ids: _Optional[_Iterable[int]] = ..., elapsed_ms: _Optional[float] = ..., next_page_token: _Optional[str] = ..., as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class MaterializeRequest(_message.Message):
    __slots__ = ("dataset", "source", "as_of", "fields")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    source: SegmentSource
    as_of: _timestamp_pb2.Timestamp
    fields: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, dataset: _Optional[str] = ..., source: _Optional[_Union[SegmentSource, _Mapping]] = ..., as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., fields: _Optional[_Iterable[str]] = ...) -> None: ...

class MaterializeResponse(_message.Message):
    __slots__ = ("arrow_ipc", "total", "missing_ids", "rank_key", "elapsed_ms", "as_of", "change_sequence")
    ARROW_IPC_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    MISSING_IDS_FIELD_NUMBER: _ClassVar[int]
    RANK_KEY_FIELD_NUMBER: _ClassVar[int]
    ELAPSED_MS_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    CHANGE_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    arrow_ipc: bytes
    total: int
    missing_ids: _containers.RepeatedScalarFieldContainer[int]
    rank_key: str
    elapsed_ms: float
    as_of: _timestamp_pb2.Timestamp
    change_sequence: int
    def __init__(self, arrow_ipc: _Optional[bytes] = ..., total: _Optional[int] = ..., missing_ids: _Optional[_Iterable[int]] = ..., rank_key: _Optional[str] = ..., elapsed_ms: _Optional[float] = ..., as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., change_sequence: _Optional[int] = ...) -> None: ...

class ExportRequest(_message.Message):
    __slots__ = ("dataset", "source", "as_of", "fields", "format", "file_name")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    FILE_NAME_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    source: SegmentSource
    as_of: _timestamp_pb2.Timestamp
    fields: _containers.RepeatedScalarFieldContainer[str]
    format: ExportFormat
    file_name: str
    def __init__(self, dataset: _Optional[str] = ..., source: _Optional[_Union[SegmentSource, _Mapping]] = ..., as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., fields: _Optional[_Iterable[str]] = ..., format: _Optional[_Union[ExportFormat, str]] = ..., file_name: _Optional[str] = ...) -> None: ...

class ExportResponse(_message.Message):
    __slots__ = ("file_name", "rows", "elapsed_ms", "metadata_file_name")
    FILE_NAME_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    ELAPSED_MS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FILE_NAME_FIELD_NUMBER: _ClassVar[int]
    file_name: str
    rows: int
    elapsed_ms: float
    metadata_file_name: str
    def __init__(self, file_name: _Optional[str] = ..., rows: _Optional[int] = ..., elapsed_ms: _Optional[float] = ..., metadata_file_name: _Optional[str] = ...) -> None: ...

class StreamExportRequest(_message.Message):
    __slots__ = ("dataset", "source", "as_of", "fields", "format")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    source: SegmentSource
    as_of: _timestamp_pb2.Timestamp
    fields: _containers.RepeatedScalarFieldContainer[str]
    format: ExportFormat
    def __init__(self, dataset: _Optional[str] = ..., source: _Optional[_Union[SegmentSource, _Mapping]] = ..., as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., fields: _Optional[_Iterable[str]] = ..., format: _Optional[_Union[ExportFormat, str]] = ...) -> None: ...

class StreamExportResponse(_message.Message):
    __slots__ = ("data", "file_name", "media_type", "rows", "metadata", "elapsed_ms")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    DATA_FIELD_NUMBER: _ClassVar[int]
    FILE_NAME_FIELD_NUMBER: _ClassVar[int]
    MEDIA_TYPE_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    ELAPSED_MS_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    file_name: str
    media_type: str
    rows: int
    metadata: _containers.ScalarMap[str, str]
    elapsed_ms: float
    def __init__(self, data: _Optional[bytes] = ..., file_name: _Optional[str] = ..., media_type: _Optional[str] = ..., rows: _Optional[int] = ..., metadata: _Optional[_Mapping[str, str]] = ..., elapsed_ms: _Optional[float] = ...) -> None: ...

class ExplainRequest(_message.Message):
    __slots__ = ("dataset", "source", "as_of")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    source: SegmentSource
    as_of: _timestamp_pb2.Timestamp
    def __init__(self, dataset: _Optional[str] = ..., source: _Optional[_Union[SegmentSource, _Mapping]] = ..., as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ExplainNode(_message.Message):
    __slots__ = ("label", "size", "ms", "children", "bytes_read")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    MS_FIELD_NUMBER: _ClassVar[int]
    CHILDREN_FIELD_NUMBER: _ClassVar[int]
    BYTES_READ_FIELD_NUMBER: _ClassVar[int]
    label: str
    size: int
    ms: float
    children: _containers.RepeatedCompositeFieldContainer[ExplainNode]
    bytes_read: int
    def __init__(self, label: _Optional[str] = ..., size: _Optional[int] = ..., ms: _Optional[float] = ..., children: _Optional[_Iterable[_Union[ExplainNode, _Mapping]]] = ..., bytes_read: _Optional[int] = ...) -> None: ...

class ExplainResponse(_message.Message):
    __slots__ = ("root",)
    ROOT_FIELD_NUMBER: _ClassVar[int]
    root: ExplainNode
    def __init__(self, root: _Optional[_Union[ExplainNode, _Mapping]] = ...) -> None: ...

class CreateSavedSegmentRequest(_message.Message):
    __slots__ = ("dataset", "name", "segment", "segment_json", "description", "active")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_JSON_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    name: str
    segment: Segment
    segment_json: str
    description: str
    active: bool
    def __init__(self, dataset: _Optional[str] = ..., name: _Optional[str] = ..., segment: _Optional[_Union[Segment, _Mapping]] = ..., segment_json: _Optional[str] = ..., description: _Optional[str] = ..., active: _Optional[bool] = ...) -> None: ...

class CreateSavedSegmentResponse(_message.Message):
    __slots__ = ("saved_segment",)
    SAVED_SEGMENT_FIELD_NUMBER: _ClassVar[int]
    saved_segment: SavedSegment
    def __init__(self, saved_segment: _Optional[_Union[SavedSegment, _Mapping]] = ...) -> None: ...

class GetSavedSegmentRequest(_message.Message):
    __slots__ = ("dataset", "name")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    name: str
    def __init__(self, dataset: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class GetSavedSegmentResponse(_message.Message):
    __slots__ = ("saved_segment",)
    SAVED_SEGMENT_FIELD_NUMBER: _ClassVar[int]
    saved_segment: SavedSegment
    def __init__(self, saved_segment: _Optional[_Union[SavedSegment, _Mapping]] = ...) -> None: ...

class ListSavedSegmentsRequest(_message.Message):
    __slots__ = ("dataset",)
    DATASET_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    def __init__(self, dataset: _Optional[str] = ...) -> None: ...

class ListSavedSegmentsResponse(_message.Message):
    __slots__ = ("saved_segments",)
    SAVED_SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    saved_segments: _containers.RepeatedCompositeFieldContainer[SavedSegment]
    def __init__(self, saved_segments: _Optional[_Iterable[_Union[SavedSegment, _Mapping]]] = ...) -> None: ...

class UpdateSavedSegmentRequest(_message.Message):
    __slots__ = ("dataset", "name", "segment", "segment_json", "description", "active")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_JSON_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    name: str
    segment: Segment
    segment_json: str
    description: str
    active: bool
    def __init__(self, dataset: _Optional[str] = ..., name: _Optional[str] = ..., segment: _Optional[_Union[Segment, _Mapping]] = ..., segment_json: _Optional[str] = ..., description: _Optional[str] = ..., active: _Optional[bool] = ...) -> None: ...

class UpdateSavedSegmentResponse(_message.Message):
    __slots__ = ("saved_segment",)
    SAVED_SEGMENT_FIELD_NUMBER: _ClassVar[int]
    saved_segment: SavedSegment
    def __init__(self, saved_segment: _Optional[_Union[SavedSegment, _Mapping]] = ...) -> None: ...

class DeleteSavedSegmentRequest(_message.Message):
    __slots__ = ("dataset", "name")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    name: str
    def __init__(self, dataset: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class DeleteSavedSegmentResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SavedSegment(_message.Message):
    __slots__ = ("name", "segment", "segment_json", "description", "active", "created_at", "updated_at")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_JSON_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    name: str
    segment: Segment
    segment_json: str
    description: str
    active: bool
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., segment: _Optional[_Union[Segment, _Mapping]] = ..., segment_json: _Optional[str] = ..., description: _Optional[str] = ..., active: _Optional[bool] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateGroupRequest(_message.Message):
    __slots__ = ("dataset", "name", "segment", "segment_json", "saved_segment", "as_of", "description", "ttl_days")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_JSON_FIELD_NUMBER: _ClassVar[int]
    SAVED_SEGMENT_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    TTL_DAYS_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    name: str
    segment: Segment
    segment_json: str
    saved_segment: str
    as_of: _timestamp_pb2.Timestamp
    description: str
    ttl_days: int
    def __init__(self, dataset: _Optional[str] = ..., name: _Optional[str] = ..., segment: _Optional[_Union[Segment, _Mapping]] = ..., segment_json: _Optional[str] = ..., saved_segment: _Optional[str] = ..., as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., description: _Optional[str] = ..., ttl_days: _Optional[int] = ...) -> None: ...

class CreateGroupResponse(_message.Message):
    __slots__ = ("group",)
    GROUP_FIELD_NUMBER: _ClassVar[int]
    group: Group
    def __init__(self, group: _Optional[_Union[Group, _Mapping]] = ...) -> None: ...

class Group(_message.Message):
    __slots__ = ("name", "description", "count", "source", "saved_segment", "as_of", "created_at", "expires_at", "expired")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    SAVED_SEGMENT_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRED_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    count: int
    source: str
    saved_segment: str
    as_of: _timestamp_pb2.Timestamp
    created_at: _timestamp_pb2.Timestamp
    expires_at: _timestamp_pb2.Timestamp
    expired: bool
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., count: _Optional[int] = ..., source: _Optional[str] = ..., saved_segment: _Optional[str] = ..., as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expired: _Optional[bool] = ...) -> None: ...

class GetGroupRequest(_message.Message):
    __slots__ = ("dataset", "name")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    name: str
    def __init__(self, dataset: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class GetGroupResponse(_message.Message):
    __slots__ = ("group",)
    GROUP_FIELD_NUMBER: _ClassVar[int]
    group: Group
    def __init__(self, group: _Optional[_Union[Group, _Mapping]] = ...) -> None: ...

class ListGroupsRequest(_message.Message):
    __slots__ = ("dataset",)
    DATASET_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    def __init__(self, dataset: _Optional[str] = ...) -> None: ...

class ListGroupsResponse(_message.Message):
    __slots__ = ("groups",)
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    groups: _containers.RepeatedCompositeFieldContainer[Group]
    def __init__(self, groups: _Optional[_Iterable[_Union[Group, _Mapping]]] = ...) -> None: ...

class DeleteGroupRequest(_message.Message):
    __slots__ = ("dataset", "name")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    name: str
    def __init__(self, dataset: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class DeleteGroupResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class MaterializeGroupRequest(_message.Message):
    __slots__ = ("dataset", "name", "fields")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    name: str
    fields: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, dataset: _Optional[str] = ..., name: _Optional[str] = ..., fields: _Optional[_Iterable[str]] = ...) -> None: ...

class MaterializeGroupResponse(_message.Message):
    __slots__ = ("arrow_ipc", "total", "missing_ids", "rank_key", "elapsed_ms", "as_of", "change_sequence")
    ARROW_IPC_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    MISSING_IDS_FIELD_NUMBER: _ClassVar[int]
    RANK_KEY_FIELD_NUMBER: _ClassVar[int]
    ELAPSED_MS_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    CHANGE_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    arrow_ipc: bytes
    total: int
    missing_ids: _containers.RepeatedScalarFieldContainer[int]
    rank_key: str
    elapsed_ms: float
    as_of: _timestamp_pb2.Timestamp
    change_sequence: int
    def __init__(self, arrow_ipc: _Optional[bytes] = ..., total: _Optional[int] = ..., missing_ids: _Optional[_Iterable[int]] = ..., rank_key: _Optional[str] = ..., elapsed_ms: _Optional[float] = ..., as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., change_sequence: _Optional[int] = ...) -> None: ...

class ExportGroupRequest(_message.Message):
    __slots__ = ("dataset", "name", "fields", "format", "file_name")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    FILE_NAME_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    name: str
    fields: _containers.RepeatedScalarFieldContainer[str]
    format: ExportFormat
    file_name: str
    def __init__(self, dataset: _Optional[str] = ..., name: _Optional[str] = ..., fields: _Optional[_Iterable[str]] = ..., format: _Optional[_Union[ExportFormat, str]] = ..., file_name: _Optional[str] = ...) -> None: ...

class ExportGroupResponse(_message.Message):
    __slots__ = ("file_name", "rows", "elapsed_ms", "metadata_file_name")
    FILE_NAME_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    ELAPSED_MS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FILE_NAME_FIELD_NUMBER: _ClassVar[int]
    file_name: str
    rows: int
    elapsed_ms: float
    metadata_file_name: str
    def __init__(self, file_name: _Optional[str] = ..., rows: _Optional[int] = ..., elapsed_ms: _Optional[float] = ..., metadata_file_name: _Optional[str] = ...) -> None: ...

class CreateDatasetRequest(_message.Message):
    __slots__ = ("name", "timezone")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    name: str
    timezone: str
    def __init__(self, name: _Optional[str] = ..., timezone: _Optional[str] = ...) -> None: ...

class CreateDatasetResponse(_message.Message):
    __slots__ = ("dataset",)
    DATASET_FIELD_NUMBER: _ClassVar[int]
    dataset: DatasetInfo
    def __init__(self, dataset: _Optional[_Union[DatasetInfo, _Mapping]] = ...) -> None: ...

class GetDatasetInfoRequest(_message.Message):
    __slots__ = ("dataset",)
    DATASET_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    def __init__(self, dataset: _Optional[str] = ...) -> None: ...

class GetDatasetInfoResponse(_message.Message):
    __slots__ = ("dataset",)
    DATASET_FIELD_NUMBER: _ClassVar[int]
    dataset: DatasetInfo
    def __init__(self, dataset: _Optional[_Union[DatasetInfo, _Mapping]] = ...) -> None: ...

class ListDatasetsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListDatasetsResponse(_message.Message):
    __slots__ = ("names",)
    NAMES_FIELD_NUMBER: _ClassVar[int]
    names: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, names: _Optional[_Iterable[str]] = ...) -> None: ...

class DeleteDatasetRequest(_message.Message):
    __slots__ = ("dataset",)
    DATASET_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    def __init__(self, dataset: _Optional[str] = ...) -> None: ...

class DeleteDatasetResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class IngestRequest(_message.Message):
    __slots__ = ("dataset", "folder")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    FOLDER_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    folder: str
    def __init__(self, dataset: _Optional[str] = ..., folder: _Optional[str] = ...) -> None: ...

class IngestResponse(_message.Message):
    __slots__ = ("rows", "elapsed_ms")
    class RowsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    ROWS_FIELD_NUMBER: _ClassVar[int]
    ELAPSED_MS_FIELD_NUMBER: _ClassVar[int]
    rows: _containers.ScalarMap[str, int]
    elapsed_ms: float
    def __init__(self, rows: _Optional[_Mapping[str, int]] = ..., elapsed_ms: _Optional[float] = ...) -> None: ...

class DatasetInfo(_message.Message):
    __slots__ = ("name", "timezone", "rows", "shards", "bytes", "info_json", "live")
    class RowsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    INFO_JSON_FIELD_NUMBER: _ClassVar[int]
    LIVE_FIELD_NUMBER: _ClassVar[int]
    name: str
    timezone: str
    rows: _containers.ScalarMap[str, int]
    shards: int
    bytes: int
    info_json: str
    live: LiveState
    def __init__(self, name: _Optional[str] = ..., timezone: _Optional[str] = ..., rows: _Optional[_Mapping[str, int]] = ..., shards: _Optional[int] = ..., bytes: _Optional[int] = ..., info_json: _Optional[str] = ..., live: _Optional[_Union[LiveState, _Mapping]] = ...) -> None: ...

class CustomerRow(_message.Message):
    __slots__ = ("customer_id", "first_name", "last_name", "email", "phone", "address", "city", "postal_code", "gender", "marital_status", "birth_date", "anniversary_date", "wedding_date", "joined_on", "loyalty_member", "loyalty_points", "origin_shop", "tags", "email_opt_in", "sms_opt_in", "account_balance", "active")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    FIRST_NAME_FIELD_NUMBER: _ClassVar[int]
    LAST_NAME_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    PHONE_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    CITY_FIELD_NUMBER: _ClassVar[int]
    POSTAL_CODE_FIELD_NUMBER: _ClassVar[int]
    GENDER_FIELD_NUMBER: _ClassVar[int]
    MARITAL_STATUS_FIELD_NUMBER: _ClassVar[int]
    BIRTH_DATE_FIELD_NUMBER: _ClassVar[int]
    ANNIVERSARY_DATE_FIELD_NUMBER: _ClassVar[int]
    WEDDING_DATE_FIELD_NUMBER: _ClassVar[int]
    JOINED_ON_FIELD_NUMBER: _ClassVar[int]
    LOYALTY_MEMBER_FIELD_NUMBER: _ClassVar[int]
    LOYALTY_POINTS_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_SHOP_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    EMAIL_OPT_IN_FIELD_NUMBER: _ClassVar[int]
    SMS_OPT_IN_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_BALANCE_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    customer_id: int
    first_name: str
    last_name: str
    email: str
    phone: str
    address: str
    city: str
    postal_code: str
    gender: str
    marital_status: str
    birth_date: str
    anniversary_date: str
    wedding_date: str
    joined_on: str
    loyalty_member: bool
    loyalty_points: int
    origin_shop: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    email_opt_in: bool
    sms_opt_in: bool
    account_balance: int
    active: bool
    def __init__(self, customer_id: _Optional[int] = ..., first_name: _Optional[str] = ..., last_name: _Optional[str] = ..., email: _Optional[str] = ..., phone: _Optional[str] = ..., address: _Optional[str] = ..., city: _Optional[str] = ..., postal_code: _Optional[str] = ..., gender: _Optional[str] = ..., marital_status: _Optional[str] = ..., birth_date: _Optional[str] = ..., anniversary_date: _Optional[str] = ..., wedding_date: _Optional[str] = ..., joined_on: _Optional[str] = ..., loyalty_member: _Optional[bool] = ..., loyalty_points: _Optional[int] = ..., origin_shop: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., email_opt_in: _Optional[bool] = ..., sms_opt_in: _Optional[bool] = ..., account_balance: _Optional[int] = ..., active: _Optional[bool] = ...) -> None: ...

class PurchaseRow(_message.Message):
    __slots__ = ("customer_id", "purchased_at", "amount", "quantity", "shop", "department", "metal", "brand", "strain", "inventory_group", "inventory_type", "product", "order_id")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    PURCHASED_AT_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    SHOP_FIELD_NUMBER: _ClassVar[int]
    DEPARTMENT_FIELD_NUMBER: _ClassVar[int]
    METAL_FIELD_NUMBER: _ClassVar[int]
    BRAND_FIELD_NUMBER: _ClassVar[int]
    STRAIN_FIELD_NUMBER: _ClassVar[int]
    INVENTORY_GROUP_FIELD_NUMBER: _ClassVar[int]
    INVENTORY_TYPE_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_FIELD_NUMBER: _ClassVar[int]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    customer_id: int
    purchased_at: _timestamp_pb2.Timestamp
    amount: int
    quantity: int
    shop: str
    department: str
    metal: str
    brand: str
    strain: str
    inventory_group: str
    inventory_type: str
    product: str
    order_id: str
    def __init__(self, customer_id: _Optional[int] = ..., purchased_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., amount: _Optional[int] = ..., quantity: _Optional[int] = ..., shop: _Optional[str] = ..., department: _Optional[str] = ..., metal: _Optional[str] = ..., brand: _Optional[str] = ..., strain: _Optional[str] = ..., inventory_group: _Optional[str] = ..., inventory_type: _Optional[str] = ..., product: _Optional[str] = ..., order_id: _Optional[str] = ...) -> None: ...

class VisitRow(_message.Message):
    __slots__ = ("customer_id", "starts_at", "status", "shop")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    STARTS_AT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    SHOP_FIELD_NUMBER: _ClassVar[int]
    customer_id: int
    starts_at: _timestamp_pb2.Timestamp
    status: str
    shop: str
    def __init__(self, customer_id: _Optional[int] = ..., starts_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., status: _Optional[str] = ..., shop: _Optional[str] = ...) -> None: ...

class LaybyRow(_message.Message):
    __slots__ = ("customer_id", "opened_on", "due_on", "balance", "status")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    OPENED_ON_FIELD_NUMBER: _ClassVar[int]
    DUE_ON_FIELD_NUMBER: _ClassVar[int]
    BALANCE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    customer_id: int
    opened_on: str
    due_on: str
    balance: int
    status: str
    def __init__(self, customer_id: _Optional[int] = ..., opened_on: _Optional[str] = ..., due_on: _Optional[str] = ..., balance: _Optional[int] = ..., status: _Optional[str] = ...) -> None: ...

class ApplyChangesRequest(_message.Message):
    __slots__ = ("dataset", "customers", "purchases", "visits", "laybys", "delete_customer_ids", "batch_id")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    CUSTOMERS_FIELD_NUMBER: _ClassVar[int]
    PURCHASES_FIELD_NUMBER: _ClassVar[int]
    VISITS_FIELD_NUMBER: _ClassVar[int]
    LAYBYS_FIELD_NUMBER: _ClassVar[int]
    DELETE_CUSTOMER_IDS_FIELD_NUMBER: _ClassVar[int]
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    customers: _containers.RepeatedCompositeFieldContainer[CustomerRow]
    purchases: _containers.RepeatedCompositeFieldContainer[PurchaseRow]
    visits: _containers.RepeatedCompositeFieldContainer[VisitRow]
    laybys: _containers.RepeatedCompositeFieldContainer[LaybyRow]
    delete_customer_ids: _containers.RepeatedScalarFieldContainer[int]
    batch_id: str
    def __init__(self, dataset: _Optional[str] = ..., customers: _Optional[_Iterable[_Union[CustomerRow, _Mapping]]] = ..., purchases: _Optional[_Iterable[_Union[PurchaseRow, _Mapping]]] = ..., visits: _Optional[_Iterable[_Union[VisitRow, _Mapping]]] = ..., laybys: _Optional[_Iterable[_Union[LaybyRow, _Mapping]]] = ..., delete_customer_ids: _Optional[_Iterable[int]] = ..., batch_id: _Optional[str] = ...) -> None: ...

class ChangeCounts(_message.Message):
    __slots__ = ("customers", "purchases", "visits", "laybys", "deleted")
    CUSTOMERS_FIELD_NUMBER: _ClassVar[int]
    PURCHASES_FIELD_NUMBER: _ClassVar[int]
    VISITS_FIELD_NUMBER: _ClassVar[int]
    LAYBYS_FIELD_NUMBER: _ClassVar[int]
    DELETED_FIELD_NUMBER: _ClassVar[int]
    customers: int
    purchases: int
    visits: int
    laybys: int
    deleted: int
    def __init__(self, customers: _Optional[int] = ..., purchases: _Optional[int] = ..., visits: _Optional[int] = ..., laybys: _Optional[int] = ..., deleted: _Optional[int] = ...) -> None: ...

class ApplyChangesResponse(_message.Message):
    __slots__ = ("sequence", "rows", "not_found", "duplicate")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    NOT_FOUND_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    rows: ChangeCounts
    not_found: _containers.RepeatedScalarFieldContainer[int]
    duplicate: bool
    def __init__(self, sequence: _Optional[int] = ..., rows: _Optional[_Union[ChangeCounts, _Mapping]] = ..., not_found: _Optional[_Iterable[int]] = ..., duplicate: _Optional[bool] = ...) -> None: ...

class CompactRequest(_message.Message):
    __slots__ = ("dataset",)
    DATASET_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    def __init__(self, dataset: _Optional[str] = ...) -> None: ...

class CompactResponse(_message.Message):
    __slots__ = ("version", "sequence", "seconds")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    version: str
    sequence: int
    seconds: float
    def __init__(self, version: _Optional[str] = ..., sequence: _Optional[int] = ..., seconds: _Optional[float] = ...) -> None: ...

class LiveState(_message.Message):
    __slots__ = ("sequence", "pending")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    pending: ChangeCounts
    def __init__(self, sequence: _Optional[int] = ..., pending: _Optional[_Union[ChangeCounts, _Mapping]] = ...) -> None: ...

class TrackSavedSegmentRequest(_message.Message):
    __slots__ = ("dataset", "name", "keep", "keep_days")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    KEEP_FIELD_NUMBER: _ClassVar[int]
    KEEP_DAYS_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    name: str
    keep: int
    keep_days: int
    def __init__(self, dataset: _Optional[str] = ..., name: _Optional[str] = ..., keep: _Optional[int] = ..., keep_days: _Optional[int] = ...) -> None: ...

class TrackSavedSegmentResponse(_message.Message):
    __slots__ = ("tracking",)
    TRACKING_FIELD_NUMBER: _ClassVar[int]
    tracking: Tracking
    def __init__(self, tracking: _Optional[_Union[Tracking, _Mapping]] = ...) -> None: ...

class Tracking(_message.Message):
    __slots__ = ("name", "keep", "keep_days", "since")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KEEP_FIELD_NUMBER: _ClassVar[int]
    KEEP_DAYS_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    name: str
    keep: int
    keep_days: int
    since: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., keep: _Optional[int] = ..., keep_days: _Optional[int] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class UntrackSavedSegmentRequest(_message.Message):
    __slots__ = ("dataset", "name")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    name: str
    def __init__(self, dataset: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class UntrackSavedSegmentResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListSnapshotsRequest(_message.Message):
    __slots__ = ("dataset", "name")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    name: str
    def __init__(self, dataset: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class ListSnapshotsResponse(_message.Message):
    __slots__ = ("tracking", "snapshots")
    TRACKING_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOTS_FIELD_NUMBER: _ClassVar[int]
    tracking: Tracking
    snapshots: _containers.RepeatedCompositeFieldContainer[AudienceSnapshot]
    def __init__(self, tracking: _Optional[_Union[Tracking, _Mapping]] = ..., snapshots: _Optional[_Iterable[_Union[AudienceSnapshot, _Mapping]]] = ...) -> None: ...

class AudienceSnapshot(_message.Message):
    __slots__ = ("number", "as_of", "change_sequence", "count", "entered", "exited", "evaluation", "recorded_at")
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    CHANGE_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    ENTERED_FIELD_NUMBER: _ClassVar[int]
    EXITED_FIELD_NUMBER: _ClassVar[int]
    EVALUATION_FIELD_NUMBER: _ClassVar[int]
    RECORDED_AT_FIELD_NUMBER: _ClassVar[int]
    number: int
    as_of: _timestamp_pb2.Timestamp
    change_sequence: int
    count: int
    entered: int
    exited: int
    evaluation: EvaluationKind
    recorded_at: _timestamp_pb2.Timestamp
    def __init__(self, number: _Optional[int] = ..., as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., change_sequence: _Optional[int] = ..., count: _Optional[int] = ..., entered: _Optional[int] = ..., exited: _Optional[int] = ..., evaluation: _Optional[_Union[EvaluationKind, str]] = ..., recorded_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class DiffSnapshotsRequest(_message.Message):
    __slots__ = ("dataset", "name", "from_snapshot", "to_snapshot", "fields")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    FROM_SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    TO_SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    name: str
    from_snapshot: int
    to_snapshot: int
    fields: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, dataset: _Optional[str] = ..., name: _Optional[str] = ..., from_snapshot: _Optional[int] = ..., to_snapshot: _Optional[int] = ..., fields: _Optional[_Iterable[str]] = ...) -> None: ...

class DiffSnapshotsResponse(_message.Message):
    __slots__ = ("from_snapshot", "to_snapshot", "as_of", "change_sequence", "entered_ids", "exited_ids", "entered_arrow_ipc")
    FROM_SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    TO_SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    CHANGE_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    ENTERED_IDS_FIELD_NUMBER: _ClassVar[int]
    EXITED_IDS_FIELD_NUMBER: _ClassVar[int]
    ENTERED_ARROW_IPC_FIELD_NUMBER: _ClassVar[int]
    from_snapshot: int
    to_snapshot: int
    as_of: _timestamp_pb2.Timestamp
    change_sequence: int
    entered_ids: _containers.RepeatedScalarFieldContainer[int]
    exited_ids: _containers.RepeatedScalarFieldContainer[int]
    entered_arrow_ipc: bytes
    def __init__(self, from_snapshot: _Optional[int] = ..., to_snapshot: _Optional[int] = ..., as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., change_sequence: _Optional[int] = ..., entered_ids: _Optional[_Iterable[int]] = ..., exited_ids: _Optional[_Iterable[int]] = ..., entered_arrow_ipc: _Optional[bytes] = ...) -> None: ...

class WatchRequest(_message.Message):
    __slots__ = ("dataset", "name", "after_snapshot")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    AFTER_SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    name: str
    after_snapshot: int
    def __init__(self, dataset: _Optional[str] = ..., name: _Optional[str] = ..., after_snapshot: _Optional[int] = ...) -> None: ...

class WatchResponse(_message.Message):
    __slots__ = ("snapshot", "previous_snapshot", "as_of", "change_sequence", "count", "entered_ids", "exited_ids", "evaluation")
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    CHANGE_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    ENTERED_IDS_FIELD_NUMBER: _ClassVar[int]
    EXITED_IDS_FIELD_NUMBER: _ClassVar[int]
    EVALUATION_FIELD_NUMBER: _ClassVar[int]
    snapshot: int
    previous_snapshot: int
    as_of: _timestamp_pb2.Timestamp
    change_sequence: int
    count: int
    entered_ids: _containers.RepeatedScalarFieldContainer[int]
    exited_ids: _containers.RepeatedScalarFieldContainer[int]
    evaluation: EvaluationKind
    def __init__(self, snapshot: _Optional[int] = ..., previous_snapshot: _Optional[int] = ..., as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., change_sequence: _Optional[int] = ..., count: _Optional[int] = ..., entered_ids: _Optional[_Iterable[int]] = ..., exited_ids: _Optional[_Iterable[int]] = ..., evaluation: _Optional[_Union[EvaluationKind, str]] = ...) -> None: ...

class DailyTask(_message.Message):
    __slots__ = ("name", "at", "format", "fields", "folder", "last_run_day", "next_run")
    NAME_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    FOLDER_FIELD_NUMBER: _ClassVar[int]
    LAST_RUN_DAY_FIELD_NUMBER: _ClassVar[int]
    NEXT_RUN_FIELD_NUMBER: _ClassVar[int]
    name: str
    at: str
    format: ExportFormat
    fields: _containers.RepeatedScalarFieldContainer[str]
    folder: str
    last_run_day: str
    next_run: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., at: _Optional[str] = ..., format: _Optional[_Union[ExportFormat, str]] = ..., fields: _Optional[_Iterable[str]] = ..., folder: _Optional[str] = ..., last_run_day: _Optional[str] = ..., next_run: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SetDailyTaskRequest(_message.Message):
    __slots__ = ("dataset", "name", "at", "format", "fields", "folder")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    FOLDER_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    name: str
    at: str
    format: ExportFormat
    fields: _containers.RepeatedScalarFieldContainer[str]
    folder: str
    def __init__(self, dataset: _Optional[str] = ..., name: _Optional[str] = ..., at: _Optional[str] = ..., format: _Optional[_Union[ExportFormat, str]] = ..., fields: _Optional[_Iterable[str]] = ..., folder: _Optional[str] = ...) -> None: ...

class SetDailyTaskResponse(_message.Message):
    __slots__ = ("task",)
    TASK_FIELD_NUMBER: _ClassVar[int]
    task: DailyTask
    def __init__(self, task: _Optional[_Union[DailyTask, _Mapping]] = ...) -> None: ...

class DeleteDailyTaskRequest(_message.Message):
    __slots__ = ("dataset", "name")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    name: str
    def __init__(self, dataset: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class DeleteDailyTaskResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListDailyTasksRequest(_message.Message):
    __slots__ = ("dataset",)
    DATASET_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    def __init__(self, dataset: _Optional[str] = ...) -> None: ...

class ListDailyTasksResponse(_message.Message):
    __slots__ = ("tasks",)
    TASKS_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[DailyTask]
    def __init__(self, tasks: _Optional[_Iterable[_Union[DailyTask, _Mapping]]] = ...) -> None: ...

class RunDailyTasksRequest(_message.Message):
    __slots__ = ("dataset",)
    DATASET_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    def __init__(self, dataset: _Optional[str] = ...) -> None: ...

class DailyTaskRun(_message.Message):
    __slots__ = ("name", "day", "as_of", "rows", "entered", "exited", "file_name", "entered_file_name", "exited_file_name")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DAY_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    ENTERED_FIELD_NUMBER: _ClassVar[int]
    EXITED_FIELD_NUMBER: _ClassVar[int]
    FILE_NAME_FIELD_NUMBER: _ClassVar[int]
    ENTERED_FILE_NAME_FIELD_NUMBER: _ClassVar[int]
    EXITED_FILE_NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    day: str
    as_of: _timestamp_pb2.Timestamp
    rows: int
    entered: int
    exited: int
    file_name: str
    entered_file_name: str
    exited_file_name: str
    def __init__(self, name: _Optional[str] = ..., day: _Optional[str] = ..., as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., rows: _Optional[int] = ..., entered: _Optional[int] = ..., exited: _Optional[int] = ..., file_name: _Optional[str] = ..., entered_file_name: _Optional[str] = ..., exited_file_name: _Optional[str] = ...) -> None: ...

class RunDailyTasksResponse(_message.Message):
    __slots__ = ("runs",)
    RUNS_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[DailyTaskRun]
    def __init__(self, runs: _Optional[_Iterable[_Union[DailyTaskRun, _Mapping]]] = ...) -> None: ...
